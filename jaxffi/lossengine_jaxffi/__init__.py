"""The XLA FFI handler lossengine.integrations.jax runs wrapped losses through when this package is
installed (the source and its design: _handler.c). ``handler()`` is the PyCapsule to register with
``jax.ffi.register_ffi_target``; ``register(host)`` gives a host function ``host(ins, outs, rank)`` the slot a
custom call names it by."""
from ._handler import XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR, handler, register

__all__ = ["handler", "register", "XLA_FFI_API_MAJOR", "XLA_FFI_API_MINOR"]
__version__ = "0.1.0"
