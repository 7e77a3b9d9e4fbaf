"""The light core (statistics + kernels) imports and runs with only torch + triton + numpy,
as on a bare GPU image; importing Triton before interp still gives working kernels."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ["transformer_lens", "transformers", "dash", "ray", "jaxtyping", "pandas", "circuits"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_light_core_imports_and_runs_without_heavy_packages():
    p = _run(
        f"""
        import sys
        HEAVY = {HEAVY!r}

        class Block:  # makes every heavy package unimportable, as on a bare GPU image
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in HEAVY:
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import torch
        import interp.kernels
        import interp.stats.streaming as st
        from interp.kernels.attention_stats import triton_attention_stats  # noqa: F401

        q, k = torch.randn(1, 3, 40, 16), torch.randn(1, 1, 40, 16)
        ref = st.attention_stats(q, k, backend="dense")
        for backend in ("torch", "triton"):
            got = st.attention_stats(q, k, backend=backend)
            torch.testing.assert_close(got.entropy, ref.entropy, atol=1e-4, rtol=1e-4)
            assert torch.equal(got.argmax, ref.argmax)
        loaded = [m for m in HEAVY if m in sys.modules]
        assert not loaded, loaded
        print("ok")
        """
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().endswith("ok")


def test_import_interp_is_lazy():
    p = _run(
        """
        import sys
        import interp
        assert "transformer_lens" not in sys.modules and "transformers" not in sys.modules
        assert callable(interp.load_model)  # loaded on first use
        assert "transformer_lens" in sys.modules
        print("ok")
        """
    )
    assert p.returncode == 0, p.stderr[-3000:]


def test_triton_imported_before_interp_is_a_clear_error_on_cpu():
    """On a CPU machine Triton's own library functions are fixed as compiled (not interpreted)
    when triton is imported without TRITON_INTERPRET=1: the triton backend must say so (it used
    to end in an AttributeError), and the torch backend keeps working."""
    p = _run(
        """
        import os
        os.environ.pop("TRITON_INTERPRET", None)
        import triton  # noqa: F401  (before interp sets the interpreter flag)
        import torch
        from interp.errors import InputError
        from interp.stats.streaming import attention_stats

        q, k = torch.randn(1, 2, 20, 16), torch.randn(1, 2, 20, 16)
        try:
            attention_stats(q, k, backend="triton")
        except InputError as e:
            print("error:", e)
        ref = attention_stats(q, k, backend="dense")
        got = attention_stats(q, k)  # auto -> torch on CPU
        torch.testing.assert_close(got.col_sum, ref.col_sum, atol=1e-4, rtol=1e-4)
        print("ok")
        """
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "error: the triton backend is unavailable: Triton was imported before interp" in p.stdout
    assert "Import interp (or interp.stats) before triton" in p.stdout
    assert p.stdout.strip().endswith("ok")
