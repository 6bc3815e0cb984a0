"""Run the headless Monado OpenXR runtime for tests and benchmarks.

Monado comes from Debian trixie, unpacked into a private sysroot by
``scripts/monado.sh`` (``~/.cache/vrscope/monado/sysroot``). Its client library
is loaded *into the application process* and needs trixie's glibc, so both
``monado-service`` and the application run through the sysroot's dynamic loader
(``ld-linux-x86-64.so.2 --library-path ...``). ``LD_LIBRARY_PATH`` must never
point at the sysroot: every host binary would then fail to start.

:class:`MonadoRuntime` knows the paths and the environment;
:class:`MonadoService` starts ``monado-service`` in its own session (``setsid``)
with a private ``XDG_RUNTIME_DIR``, waits for its IPC socket and stops it by PID.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "MonadoRuntime",
    "MonadoService",
    "find_monado",
    "install_monado",
]

log = logging.getLogger(__name__)

_STAMP = ".vrscope-monado-25"
_SOCKET = "monado_comp_ipc"
_ROOT = Path(__file__).resolve().parents[2]


def _default_sysroot() -> Path:
    prefix = os.environ.get("MONADO_PREFIX")
    if prefix:
        return Path(prefix) / "sysroot"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "vrscope" / "monado" / "sysroot"


def find_monado(sysroot: str | os.PathLike[str] | None = None) -> Path | None:
    """The Monado sysroot made by ``scripts/monado.sh``, or None when it is not installed.

    ``VRSCOPE_MONADO_SYSROOT`` overrides the default location.
    """
    root = Path(sysroot or os.environ.get("VRSCOPE_MONADO_SYSROOT") or _default_sysroot())
    ok = (root / _STAMP).is_file() and (root / "usr/bin/monado-service").is_file()
    return root if ok else None


def install_monado() -> Path:
    """Run ``scripts/monado.sh`` (idempotent, cached) and return the sysroot."""
    script = _ROOT / "scripts" / "monado.sh"
    out = subprocess.run(
        ["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


@dataclass
class MonadoRuntime:
    """Paths and environment for running Monado (and an OpenXR app) from a sysroot.

    Parameters
    ----------
    sysroot : Path
        The trixie sysroot holding ``usr/bin/monado-service``.
    state_dir : Path, optional
        Private folder for ``XDG_RUNTIME_DIR`` (mode 700), ``XDG_CONFIG_HOME`` and
        the generated JSON manifests; a temporary folder by default.
    remote : bool, default: True
        Use Monado's remote driver (scripted head and controllers over TCP,
        :class:`xrmode.testing.RemoteRig`) instead of the drifting simulated HMD.
    remote_port : int, default: 4242
    """

    sysroot: Path
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vrscope-xr-")))
    remote: bool = True
    remote_port: int = 4242

    def __post_init__(self) -> None:
        self.sysroot = Path(self.sysroot)
        self.state_dir = Path(self.state_dir)
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        lib = self.libdir
        runtime = {
            "file_format_version": "1.0.0",
            "runtime": {"name": "Monado", "library_path": str(lib / "libopenxr_monado.so")},
        }
        (self.state_dir / "openxr_monado.json").write_text(json.dumps(runtime))
        # lavapipe: Monado's compositor needs a Vulkan device even when it draws nothing.
        icd = {
            "file_format_version": "1.0.0",
            "ICD": {"api_version": "1.3.0", "library_path": str(lib / "libvulkan_lvp.so")},
        }
        (self.state_dir / "lvp_icd.json").write_text(json.dumps(icd))
        if self.remote:
            cfg = {
                "active": "remote",
                "remote": {"version": 0, "port": self.remote_port, "view_count": 2},
            }
            (self.config_dir / "monado").mkdir(exist_ok=True)
            (self.config_dir / "monado" / "config_v0.json").write_text(json.dumps(cfg))

    @property
    def runtime_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    @property
    def libdir(self) -> Path:
        return self.sysroot / "usr/lib/x86_64-linux-gnu"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / _SOCKET

    @property
    def runtime_json(self) -> Path:
        return self.state_dir / "openxr_monado.json"

    def loader(self) -> list[str]:
        """argv prefix running an executable through the sysroot's dynamic loader."""
        lp = self.libdir
        path = ":".join(
            str(p)
            for p in (lp, lp / "lapack", lp / "blas", self.sysroot / "usr/lib", lp / "pulseaudio")
        )
        return [str(lp / "ld-linux-x86-64.so.2"), "--library-path", path]

    def env(
        self, base: Mapping[str, str] | None = None, display: str | None = None
    ) -> dict[str, str]:
        """Environment for ``monado-service`` and for the OpenXR application.

        ``display``: the X display the application may use (the GLX binding needs
        one); by default the application gets none, so nothing reaches for X.
        """
        env = dict(os.environ if base is None else base)
        env.pop("LD_LIBRARY_PATH", None)
        env.update(
            {
                "XRT_COMPOSITOR_NULL": "1",
                "XRT_NO_STDIN": "1",
                "XDG_RUNTIME_DIR": str(self.runtime_dir),
                "XDG_CONFIG_HOME": str(self.config_dir),
                "VK_DRIVER_FILES": str(self.state_dir / "lvp_icd.json"),
                "VK_ICD_FILENAMES": str(self.state_dir / "lvp_icd.json"),
                "XR_RUNTIME_JSON": str(self.runtime_json),
                "__EGL_VENDOR_LIBRARY_FILENAMES": str(
                    self.sysroot / "usr/share/glvnd/egl_vendor.d/50_mesa.json"
                ),
                # The app renders with VTK into our own EGL context; no X needed.
                "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow",
            }
        )
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
        if display:
            env["DISPLAY"] = display
        # The remote driver is chosen by config_v0.json (written above), which also
        # carries the port; P_OVERRIDE_ACTIVE_CONFIG=remote would force port 4242.
        env.pop("P_OVERRIDE_ACTIVE_CONFIG", None)
        return env

    def python_command(self, args: Sequence[str], python: str | None = None) -> list[str]:
        """argv running ``python args...`` through the sysroot loader (the app side)."""
        return [*self.loader(), python or sys.executable, *args]

    def cleanup(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)


class MonadoService:
    """``monado-service`` as a context manager: start, wait for the socket, stop by PID.

    Parameters
    ----------
    runtime : MonadoRuntime
    log_path : Path, optional
        Where the service's output goes (``state_dir/monado.log`` by default).
    timeout_s : float, default: 20
        How long to wait for the IPC socket.
    """

    def __init__(
        self,
        runtime: MonadoRuntime,
        log_path: Path | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        self.runtime = runtime
        self.log_path = log_path or runtime.state_dir / "monado.log"
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MonadoService:
        rt = self.runtime
        if rt.socket.exists():
            rt.socket.unlink()
        argv = [*rt.loader(), str(rt.sysroot / "usr/bin/monado-service")]
        with open(self.log_path, "wb") as logf:
            # setsid: its own process group, so stopping it never touches ours.
            self.proc = subprocess.Popen(
                argv,
                env=rt.env(),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout_s
        while not rt.socket.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"monado-service exited with {self.proc.returncode}: {self.tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"monado-service made no socket in {self.timeout_s} s")
            time.sleep(0.05)
        log.info("monado-service pid %d ready at %s", self.proc.pid, rt.socket)
        return self

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the service (by PID), SIGKILL after 5 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> MonadoService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
