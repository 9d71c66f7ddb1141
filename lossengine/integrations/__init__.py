"""Adapters from lossengine losses to other libraries' calling conventions (each module imports its
library lazily, so lossengine never requires it)."""
