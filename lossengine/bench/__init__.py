"""``lossengine bench``: forward_backward against every installed peer, measured in one interleaved run.

What is timed: one call computing a loss's value (reduction='mean') and its input gradient, in each
engine's best mode of use. lossengine: ``forward_backward``. torch: the ``torch.nn.functional`` call
and ``torch.autograd.grad`` on a leaf tensor made once. JAX: ``jit(value_and_grad(f))`` and
``block_until_ready`` (64-bit mode enabled for the run when float64 is asked for, and restored after).
scikit-learn: ``sklearn._loss`` ``loss_gradient`` into preallocated ``loss_out``/``gradient_out``, as
its solvers call it (per-sample values and gradients, no reduction; a half loss's factor 2 is applied
only when checking its numbers). NumPy: a plain reference written as a user would.

Every peer's first result is checked against lossengine's before it is timed, so a ratio never
compares different computations: a peer that disagrees is skipped, with the difference. Each figure is
the median of many calls taken in interleaved blocks (``interleaved_times``) because these machines
are shared and noisy; the spread (interquartile range as a percent of the median) says when a figure
is too noisy to trust.

The modules: ``timing`` (interleaved blocks, statistics), ``peers`` (how torch, JAX, scikit-learn and
NumPy compute a case; imported lazily, when a run builds them), ``formulas`` (the peers' NumPy and JAX
formulas), ``cases`` (the case table), ``run`` (checking and timing a case), ``roofline`` (bytes moved
and bandwidth against ``a + b -> c``), ``report`` (tables, plot) and ``command`` (the CLI). The
scripts in benchmarks/ are entry points over the same pieces.

The case table (``CASES``) is the one place a loss gets benchmarked: a ``Case`` says how to build its
inputs at a given size and how each peer computes it; a registered loss without a case still runs
(lossengine against torch, on its tiled sample inputs). A family adds its losses with one entry each,
for example::

    Case("triplet_margin_loss", _triplets, sizes=((4096, 128),),
         jax=jax_peer(formulas.triplet_jax), no_peer={"sklearn": "..."})

(torch needs no entry: its functional of the same name is the default).

The pytest-benchmark suite (benchmarks/bench_losses.py) is generated from the same table.
"""
from .cases import CASES, Case, bench_inputs, select_cases, sizes_per_case
from .command import add_subcommand, main
from .peers import PEERS, Runner, Skip
from .report import format_report, format_table, table, write_plot
from .run import BASELINE, Prepared, agreement, measure, prepare, run_benchmarks
from .timing import NOISY_SPREAD, interleaved_medians, interleaved_times, summarize

__all__ = ["BASELINE", "CASES", "Case", "NOISY_SPREAD", "PEERS", "Prepared", "Runner", "Skip", "add_subcommand",
           "agreement", "bench_inputs", "format_report", "format_table", "interleaved_medians",
           "interleaved_times", "main", "measure", "prepare", "run_benchmarks", "select_cases",
           "sizes_per_case", "summarize", "table", "write_plot"]
