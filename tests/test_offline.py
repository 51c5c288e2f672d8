"""Offline configuration of ultralytics (run in fresh interpreters: it acts at import time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest


def _run(code: str, tmp_path, **env_extra) -> dict:
    env = {**os.environ, "DETPRUNE_HOME": str(tmp_path / "home"), **env_extra}
    for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_configure_offline_sets_env_and_fonts_idempotently(tmp_path):
    result = _run(
        """
        import json, os, sys
        from detprune._offline import configure_offline, detprune_home
        a = configure_offline()
        b = configure_offline()
        fonts = sorted(p.name for p in (a / "Ultralytics").iterdir())
        print(json.dumps({"same": a == b, "dir": str(a), "home": str(detprune_home()), "fonts": fonts,
                          "env": [os.environ.get(k) for k in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR")],
                          "ultralytics": "ultralytics" in sys.modules, "torch": "torch" in sys.modules}))
        """,
        tmp_path,
    )
    assert result["same"]
    assert result["dir"] == str(tmp_path / "home" / "ultralytics") and result["home"] == str(
        tmp_path / "home"
    )
    assert result["env"] == ["1", "0", result["dir"]]
    assert not result["ultralytics"] and not result["torch"]
    pytest.importorskip("matplotlib")
    assert result["fonts"] == ["Arial.Unicode.ttf", "Arial.ttf"]


def test_import_ultralytics_is_offline_and_finds_fonts_locally(tmp_path):
    pytest.importorskip("ultralytics")
    pytest.importorskip("matplotlib")
    result = _run(
        """
        import json, socket
        calls = []
        def refuse(*args, **kwargs):
            calls.append(repr(args[1:3]))
            raise OSError("network disabled by test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from detprune._offline import import_ultralytics
        ul = import_ultralytics()
        from ultralytics.utils import ONLINE, USER_CONFIG_DIR
        from ultralytics.utils.checks import check_font
        font = check_font("Arial.ttf")
        unicode_font = check_font("Arial.Unicode.ttf")
        on = [k for k in ("raytune", "mlflow", "wandb", "hub", "tensorboard") if ul.settings.get(k)]
        print(json.dumps({"calls": calls, "online": ONLINE, "sync": ul.settings["sync"], "on": on,
                          "config": str(USER_CONFIG_DIR), "font": str(font), "ufont": str(unicode_font)}))
        """,
        tmp_path,
    )
    config = str(tmp_path / "home" / "ultralytics" / "Ultralytics")
    assert result["calls"] == [] and result["online"] is False and result["sync"] is False
    assert result["on"] == []  # experiment-tracker integrations are off
    assert result["config"] == config
    assert result["font"] == os.path.join(config, "Arial.ttf")
    assert result["ufont"] == os.path.join(config, "Arial.Unicode.ttf")


def test_downloads_allowed_flag(monkeypatch):
    from detprune._offline import downloads_allowed

    monkeypatch.delenv("DETPRUNE_OFFLINE", raising=False)
    assert downloads_allowed()
    for value in ("1", "true", "YES"):
        monkeypatch.setenv("DETPRUNE_OFFLINE", value)
        assert not downloads_allowed()
    monkeypatch.setenv("DETPRUNE_OFFLINE", "0")
    assert downloads_allowed()


def test_first_import_in_a_new_home_prints_no_settings_banner(tmp_path):
    pytest.importorskip("ultralytics")
    env = {**os.environ, "DETPRUNE_HOME": str(tmp_path / "home")}
    for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):
        env.pop(name, None)
    code = "from detprune._offline import import_ultralytics; import_ultralytics(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "ok\n" and "Settings" not in out.stderr
    assert (tmp_path / "home" / "ultralytics" / "Ultralytics" / "settings.json").is_file()
