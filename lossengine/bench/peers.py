"""The peers a case is compared with: how each computes a case (builders returning a ``Runner``), whether
it is installed, the threads it uses, and the settings a run gives it.

A builder is ``(case, arrays, options, threads) -> Runner``; it raises ``Skip`` when its peer cannot run
that case. Peers are imported here lazily, when a run builds them: importing lossengine.bench imports
none of torch, JAX or scikit-learn.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from .cases import Case

PEERS = ("torch", "jax", "sklearn", "numpy")


def as_arrays(gradients: Any) -> Any:
    """A gradient as a NumPy array, several (a tuple or list) as a tuple of them."""
    if isinstance(gradients, (tuple, list)):
        return tuple(np.asarray(g) for g in gradients)
    return np.asarray(gradients)


class Skip(Exception):
    """A peer that cannot run this case; the message says why."""


@dataclass
class Runner:
    """A zero-argument timed call and how to read its result as (value, input gradient) in torch's
    convention (called once, outside the timing, to check the peer agrees with lossengine)."""
    call: Callable[[], Any]
    read: Callable[[Any], tuple] = lambda r: (np.asarray(r[0]), as_arrays(r[1]))
    compiles: bool = False      # the first call compiles (JIT), so its time says nothing


def torch_peer(case: Case, arrays: tuple, options: dict, threads: int) -> Runner:
    """torch.nn.functional's function of the loss's name with the same options (lossengine's are
    torch's), differentiated by torch.autograd.grad with respect to leaf tensors made once (the
    input, or every argument the case differentiates)."""
    import torch

    fn = getattr(torch.nn.functional, case.loss, None)
    if fn is None:
        raise Skip(f"torch.nn.functional has no {case.loss}")
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    positions = case.gradient_positions()
    leaves = [tensors[k].requires_grad_(True) for k in positions]

    def call():
        value = fn(*tensors, **options)
        return value, torch.autograd.grad(value, leaves)

    def read(r):
        grads = tuple(g.numpy() for g in r[1])
        return r[0].detach().numpy(), grads if case.wrt else grads[0]

    return Runner(call, read)


def torch_ctc_peer(case: Case, arrays: tuple, options: dict, threads: int) -> Runner:
    """torch's ctc_loss; its gradient wrt log_probs is the one lossengine gives with from_logits=True
    (the option itself is lossengine's, not torch's)."""
    return torch_peer(case, arrays, {k: v for k, v in options.items() if k != "from_logits"}, threads)


def jax_peer(formula: Callable, needs: str | None = None) -> Callable:
    """``formula(jnp, jax, options, *arrays)`` -> the mean loss; timed as jit(value_and_grad) with
    respect to the arguments the case differentiates. ``needs``: a module the formula imports (optax)."""
    def build(case: Case, arrays: tuple, options: dict, threads: int) -> Runner:
        import jax
        import jax.numpy as jnp

        if needs is not None:
            try:
                __import__(needs)
            except ImportError:
                raise Skip(f"{needs} is not installed") from None
        positions = case.gradient_positions()
        value_and_grad = jax.jit(jax.value_and_grad(lambda *a: formula(jnp, jax, options, *a),
                                                    argnums=positions if case.wrt else 0))
        device_arrays = [jnp.asarray(a) for a in arrays]
        if any(d.dtype != a.dtype for d, a in zip(device_arrays, arrays) if a.dtype.kind == "f"):
            raise Skip(f"JAX computes in {device_arrays[0].dtype} (64-bit mode off)")

        def call():
            return jax.block_until_ready(value_and_grad(*device_arrays))

        return Runner(call, compiles=True)
    return build


def sklearn_peer(make_loss: Callable, factor: float = 1.0) -> Callable:
    """A ``sklearn._loss`` loss (``make_loss(input, options)``) whose per-sample loss is ``1/factor`` of the
    torch loss's (the half losses: factor 2); timed as ``loss_gradient`` into preallocated outputs."""
    def build(case: Case, arrays: tuple, options: dict, threads: int) -> Runner:
        x, target = arrays
        loss = make_loss(x, options)
        y = np.ascontiguousarray(target, dtype=x.dtype)
        loss_out = np.empty(x.shape[0], x.dtype)
        gradient_out = np.empty_like(x)

        def call():
            return loss.loss_gradient(y_true=y, raw_prediction=x, loss_out=loss_out,
                                      gradient_out=gradient_out, n_threads=threads)

        rows = x.shape[0]
        return Runner(call, lambda r: (factor * r[0].mean(dtype=np.float64), factor * r[1] / rows))
    return build


def sklearn_loss(name: str, **kwargs) -> Callable:
    def make(x, options):
        from sklearn._loss import loss as sk

        return getattr(sk, name)(**kwargs)
    return make


def sklearn_multinomial(x, options):
    if options.get("label_smoothing"):
        raise Skip("HalfMultinomialLoss has no label smoothing")
    from sklearn._loss.loss import HalfMultinomialLoss

    return HalfMultinomialLoss(n_classes=x.shape[1])


def numpy_peer(reference: Callable) -> Callable:
    """``reference(options, *arrays)`` -> (mean loss, input gradient), plain NumPy."""
    def build(case: Case, arrays: tuple, options: dict, threads: int) -> Runner:
        return Runner(lambda: reference(options, *arrays))
    return build


def installed(peer: str) -> str | None:
    """None when the peer can be imported, else why not."""
    module = {"torch": "torch", "jax": "jax", "sklearn": "sklearn._loss.loss", "numpy": "numpy"}[peer]
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc.name or module}); pip install 'lossengine[bench]'"
    return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def peer_threads(peers: Sequence[str], threads: int) -> dict[str, str]:
    """How many threads each engine computes with in this run, as reported by the engine."""
    out = {"lossengine": str(threads)}
    if "torch" in peers:
        import torch

        out["torch"] = str(torch.get_num_threads())
    if "jax" in peers:
        flags = os.environ.get("XLA_FLAGS", "")
        out["jax"] = ("1 (XLA_FLAGS: multi-threaded Eigen off)" if "xla_cpu_multi_thread_eigen=false" in flags
                      else f"{_cores()} (XLA's intra-op pool: every core; fixed when JAX starts)")
    if "sklearn" in peers:
        out["sklearn"] = f"{threads} (n_threads)"
    if "numpy" in peers:
        out["numpy"] = "1 (ufuncs)"
    return out


@contextlib.contextmanager
def engine_settings(peers: Sequence[str], threads: int, dtype: np.dtype) -> Iterator[None]:
    """Thread counts (and JAX's 64-bit mode for float64) for the run, restored afterwards."""
    from .._threads import threads as le_threads

    with contextlib.ExitStack() as stack:
        stack.enter_context(le_threads(threads))
        # torch's deprecation notices (kl_div's 'mean') and the like would interleave with the table.
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        if "torch" in peers:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, before)
        if "jax" in peers and dtype == np.float64:
            import jax

            stack.enter_context(jax.enable_x64(True))
        yield


def versions(peers) -> dict:
    from .. import __version__

    out = {"lossengine": __version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    modules = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}
    for peer in peers:
        if peer in modules:
            out[peer] = getattr(sys.modules.get(modules[peer]) or __import__(modules[peer]), "__version__", "?")
    return out

