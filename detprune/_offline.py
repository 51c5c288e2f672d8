"""Offline-first settings for ultralytics, applied once before it is imported.

ultralytics reads its environment when it is first imported: whether it may
go online (``YOLO_OFFLINE``), whether it may ``pip install`` missing packages
(``YOLO_AUTOINSTALL``), and where its settings and fonts live
(``YOLO_CONFIG_DIR``; it uses ``$YOLO_CONFIG_DIR/Ultralytics``). Without a local
``Arial.ttf`` it starts a background download when it first draws a plot, and
with ``sync`` on it sends usage analytics. :func:`configure_offline` fixes all
of that so that no detprune code path opens a socket on its own:

- ``YOLO_OFFLINE=1`` (``ultralytics.utils.is_online()`` returns ``False`` without a
  DNS probe, so analytics and asset checks are off),
- ``YOLO_AUTOINSTALL=0`` (never ``pip install`` at run time),
- ``YOLO_CONFIG_DIR=<detprune home>/ultralytics`` — a folder detprune owns, so
  the user's own ultralytics settings file is never rewritten — holding
  ``Ultralytics/Arial.ttf`` and ``Ultralytics/Arial.Unicode.ttf`` copied from
  matplotlib's bundled ``DejaVuSans.ttf``,
- after import, ``settings.update({"sync": False})``.

The detprune home is ``$DETPRUNE_HOME`` if set, else ``$XDG_CACHE_HOME/detprune``
(``~/.cache/detprune``). Setting ``DETPRUNE_OFFLINE=1`` additionally forbids the
few downloads detprune itself may try (pretrained weights, see
:mod:`detprune.features.weights`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["configure_offline", "detprune_home", "downloads_allowed", "import_ultralytics"]

logger = logging.getLogger("detprune")

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_lock = threading.Lock()
_configured: Path | None = None
_synced_off = False


def detprune_home() -> Path:
    """Return detprune's own cache folder (created if missing).

    Returns
    -------
    pathlib.Path
        ``$DETPRUNE_HOME`` or ``$XDG_CACHE_HOME/detprune`` or ``~/.cache/detprune``.
    """
    try:
        env = os.environ.get("DETPRUNE_HOME")
        if env:
            home = Path(env).expanduser()
        else:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            home = Path(base).expanduser() / "detprune"
        home.mkdir(parents=True, exist_ok=True)
        return home
    except (OSError, RuntimeError, KeyError):  # a read-only home, or none (no HOME, a uid
        return _private_home()               # without a passwd entry: containers)


def _private_home() -> Path:
    """``$TMPDIR/detprune-<uid>``, made private (0700) and checked to be this user's own
    folder; a fresh private folder where that name is taken (a file, another owner)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    home = Path(tempfile.gettempdir()) / f"detprune-{uid if uid is not None else 0}"
    try:
        home.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(home)
        import stat

        if stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid) and not st.st_mode & 0o077:
            return home
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="detprune-"))  # private, unpredictable


def downloads_allowed() -> bool:
    """Whether detprune may try to download anything (``DETPRUNE_OFFLINE`` unset or false).

    Returns
    -------
    bool
    """
    value = os.environ.get("DETPRUNE_OFFLINE", "").strip().lower()
    return value not in {"1", "true", "yes", "on", "y", "t"}


def _bundled_font() -> Path | None:
    """matplotlib's DejaVuSans.ttf, found without importing matplotlib."""
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    font = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.is_file() else None


def _install_fonts(folder: Path) -> None:
    """Copy a local TTF as the fonts ultralytics would otherwise download (atomic, idempotent)."""
    missing = [name for name in _FONT_NAMES if not (folder / name).is_file()]
    if not missing:
        return
    source = _bundled_font()
    if source is None:
        logger.debug("no local TTF found; ultralytics plots may try to download Arial.ttf")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            os.close(fd)
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, folder / name)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except OSError as exc:  # a full or read-only home: plots fall back to PIL's font
        logger.debug("could not install the local fonts in %s: %s", folder, exc)


#: ultralytics settings keys of integrations that are switched off (detprune's own settings file).
_INTEGRATIONS = ("hub", "raytune", "mlflow", "wandb", "comet", "clearml", "neptune", "dvc",
                 "tensorboard")


def configure_offline() -> Path:
    """Apply the offline settings for ultralytics; safe to call any number of times.

    Must run before ``ultralytics`` is first imported to take full effect (every
    detprune code path imports ultralytics through :func:`import_ultralytics`).
    If ultralytics was imported earlier by someone else, the environment can no
    longer change its import-time constants; a debug message says so and only
    ``sync`` is turned off.

    Returns
    -------
    pathlib.Path
        The ``YOLO_CONFIG_DIR`` in use.
    """
    global _configured
    with _lock:
        if _configured is None:
            if "ultralytics" in sys.modules:
                logger.debug(
                    "ultralytics was imported before detprune configured it for offline use"
                )
            config_dir = detprune_home() / "ultralytics"
            try:
                config_dir.mkdir(parents=True, exist_ok=True)
            except OSError:  # a full or read-only home
                config_dir = _private_home() / "ultralytics"
                config_dir.mkdir(parents=True, exist_ok=True)
            _install_fonts(config_dir / "Ultralytics")
            _configured = config_dir
        # re-asserted on every call: cheap, and survives code that edits os.environ in between
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "0"
        os.environ["YOLO_CONFIG_DIR"] = str(_configured)
        return _configured


class _QuietSettingsBanner(logging.Filter):
    """Drops ultralytics' 'Creating new Ultralytics Settings ...' banner: detprune's own
    settings file (in its config folder) is new on every new machine, and the banner tells
    how to edit a file the user never asked for, amid detprune's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Creating new Ultralytics Settings")


def import_ultralytics() -> ModuleType:
    """Configure offline use, import ultralytics and turn its analytics sync off.

    Returns
    -------
    module
        The ``ultralytics`` package.

    Raises
    ------
    detprune.MissingDependencyError
        If ultralytics is not installed.
    """
    global _synced_off
    configure_offline()
    from ._optional import require

    quiet = _QuietSettingsBanner()
    first = "ultralytics" not in sys.modules
    if first:  # its first import in a new YOLO_CONFIG_DIR prints a settings banner on stdout
        logging.getLogger("ultralytics").addFilter(quiet)
    try:
        ultralytics = require("ultralytics", purpose="YOLOv5 embeddings")
    finally:
        logging.getLogger("ultralytics").removeFilter(quiet)
    if not _synced_off:
        with _lock:
            try:
                settings = ultralytics.settings
                # no usage sync, and no experiment-tracker integrations (Ray Tune, MLflow,
                # W&B, ...): installed for other reasons, they would log runs or reach out
                off = {k: False for k in _INTEGRATIONS if k in settings and settings.get(k)}
                if settings.get("sync", True):
                    off["sync"] = False
                if off:
                    settings.update(off)
            except Exception as exc:  # settings file not writable: harmless, YOLO_OFFLINE holds
                logger.debug("could not turn ultralytics sync off: %s", exc)
            _synced_off = True
    return ultralytics
