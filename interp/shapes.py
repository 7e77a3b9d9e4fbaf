"""Shape annotations for the light core (``interp.stats``, ``interp.kernels``).

jaxtyping's ``Float`` / ``Int`` / ``Bool`` where it is installed (always, with the package's own
dependencies); on a bare GPU image with only torch + triton + numpy, stand-ins that read
``Float[Tensor, "batch n"]`` as plain ``Tensor``, so the statistics and kernels still import.
"""

from __future__ import annotations

from typing import Any

try:
    from jaxtyping import Bool, Float, Int
except ImportError:  # pragma: no cover - exercised by a subprocess test that hides jaxtyping

    class _Shaped:
        def __class_getitem__(cls, item: Any) -> Any:
            return item[0] if isinstance(item, tuple) else item

    Bool = Float = Int = _Shaped  # type: ignore[assignment]

__all__ = ["Bool", "Float", "Int"]
