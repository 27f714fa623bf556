from dataclasses import dataclass
from pathlib import Path

import pytest

from divergen_lib.config import ConfigError, InputPath, load_config
from divergen_lib.paths import REPO_ROOT
from divergen_lib.stages import SECTIONS


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_loads_typed_sections_and_common_yaml(tmp_path):
    write(tmp_path / "common.yaml", "profile: x\noutput_dir: out/x\nseed: 3\n")
    params = write(
        tmp_path / "00_toyworld.yaml", "toyworld:\n  n_train_images: 50\n  frequency_split: [0.2, 0.5, 0.3]\n"
    )
    cfg = load_config(params)
    assert cfg.common.seed == 3 and cfg.common.output_dir == REPO_ROOT / "out/x"  # relative: from the root
    world = cfg.section("toyworld")
    assert world.n_train_images == 50 and world.frequency_split == (0.2, 0.5, 0.3)
    assert cfg.stage_dir("toyworld") == REPO_ROOT / "out/x/toyworld"


def test_stage_file_overrides_common_and_set_overrides_both(tmp_path):
    write(tmp_path / "common.yaml", "seed: 1\ntoyworld:\n  n_val_images: 7\n")
    params = write(tmp_path / "a.yaml", "seed: 2\ntoyworld:\n  n_train_images: 30\n")
    cfg = load_config(params, ["seed=5", "toyworld.image_size=64"])
    section = cfg.section("toyworld")
    assert cfg.common.seed == 5
    assert (section.n_val_images, section.n_train_images, section.image_size) == (7, 30, 64)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sed: 1\n", r"a\.yaml: unknown key 'sed'"),
        ("toyworld:\n  n_imgs: 3\n", r"a\.yaml: unknown key 'toyworld\.n_imgs'"),
        ("toyworld:\n  n_train_images: many\n", r"a\.yaml: toyworld\.n_train_images: expected an integer, got 'many'"),
        ("seed: true\n", r"a\.yaml: seed: expected an integer"),
        ("device: 1\n", r"a\.yaml: device: expected one of 'cpu', 'cuda', 'auto', got 1"),
        ("toyworld: 3\n", r"a\.yaml: toyworld: expected a mapping"),
        ("toyworld:\n  frequency_split: [0.5, 0.5]\n", r"toyworld\.frequency_split: expected a list of 3 values"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, text, message):
    params = write(tmp_path / "a.yaml", text)
    with pytest.raises(ConfigError, match=message):
        load_config(params)


def test_error_from_common_yaml_names_common_yaml(tmp_path):
    write(tmp_path / "common.yaml", "device: gpu\n")
    params = write(tmp_path / "a.yaml", "seed: 1\n")
    with pytest.raises(ConfigError, match=r"common\.yaml: device: expected one of 'cpu', 'cuda', 'auto'"):
        load_config(params)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="params file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_malformed_yaml_is_one_line(tmp_path):
    params = write(tmp_path / "a.yaml", "toyworld: [unclosed\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: not valid YAML") as info:
        load_config(params)
    assert "\n" not in str(info.value)


def test_invalid_value_rejected_by_section_check(tmp_path):
    params = write(tmp_path / "a.yaml", "toyworld:\n  frequency_split: [0.5, 0.5, 0.5]\n")
    with pytest.raises(ConfigError, match="frequency_split must be three positive fractions"):
        load_config(params)


def test_bad_override_syntax(tmp_path):
    params = write(tmp_path / "a.yaml", "")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(params, ["seed"])
    with pytest.raises(ConfigError, match=r"--set toyworld\.n_train_images=x: toyworld\.n_train_images"):
        load_config(params, ["toyworld.n_train_images=x"])


@dataclass(frozen=True)
class _NeedsFile:
    annotations: InputPath
    note: str = ""


@pytest.fixture
def needs_file_section():
    SECTIONS.register("needs_file", _NeedsFile)
    yield
    SECTIONS.remove("needs_file")


def test_missing_required_path_names_file_key_and_path(tmp_path, needs_file_section):
    params = write(tmp_path / "a.yaml", "needs_file:\n  annotations: $HOME/definitely/missing.json\n")
    with pytest.raises(
        ConfigError, match=r"a\.yaml: needs_file\.annotations: file or folder not found: .*missing\.json"
    ):
        load_config(params)
    write(tmp_path / "there.json", "{}")
    ok = write(tmp_path / "b.yaml", f"needs_file:\n  annotations: {tmp_path / 'there.json'}\n")
    assert load_config(ok).section("needs_file").annotations == tmp_path / "there.json"


def test_required_key_without_default(tmp_path, needs_file_section):
    params = write(tmp_path / "a.yaml", "needs_file:\n  note: hi\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: missing required key 'needs_file\.annotations'"):
        load_config(params)


def test_every_shipped_params_file_loads():
    root = Path(__file__).resolve().parent.parent / "params"
    files = [p for p in root.glob("*/*.yaml") if p.name != "common.yaml"]
    assert files
    for path in files:
        load_config(path)


@pytest.mark.parametrize("name", [".", "..", "a/b", ""])
def test_run_and_model_names_that_would_escape_their_folder_are_refused(name):
    smoke = Path(__file__).resolve().parent.parent / "params" / "smoke"
    with pytest.raises(ConfigError, match="must be non-empty, contain no '/' and not be '.' or '..'"):
        load_config(smoke / "05_training.yaml", [f"training.runs=[{{name: '{name}'}}]"])
    with pytest.raises(ConfigError, match="model name"):
        load_config(smoke / "02_generation.yaml", [f"generation.models=[{{name: '{name}', backend: toy}}]"])


def test_relative_paths_are_taken_from_the_repository_root_whatever_the_current_directory(tmp_path, monkeypatch):
    """A Jupyter kernel starts in notebooks/: the same params file gives the same absolute paths there."""
    here = load_config("params/smoke/05_training.yaml")
    monkeypatch.chdir(REPO_ROOT / "notebooks")
    there = load_config("params/smoke/05_training.yaml")
    assert there == here and there.common.output_dir == REPO_ROOT / "outputs/smoke"
    assert there.section("training").train.annotations == REPO_ROOT / "outputs/smoke/toyworld/train.json"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"params file not found: params/smoke/nope.yaml .*{REPO_ROOT}"):
        load_config("params/smoke/nope.yaml")


def test_digests_spell_paths_under_the_root_relative_to_it():
    from divergen_lib.config import method_values

    assert method_values({"a": REPO_ROOT / "outputs/x", "b": Path("/elsewhere/y")}) == {
        "a": "outputs/x",
        "b": "/elsewhere/y",
    }


def test_the_command_line_reads_params_relative_to_the_shells_directory(tmp_path):
    import subprocess
    import sys

    def cli(params: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "divergen_lib", "toyworld", "--params", params, "--set", f"output_dir={tmp_path}"]
        return subprocess.run(cmd, cwd=REPO_ROOT / "notebooks", capture_output=True, text=True)

    done = cli("../params/smoke/00_toyworld.yaml")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "toyworld/world.json").is_file()
    done = cli("params/smoke/00_toyworld.yaml")  # typed in notebooks/: there is no such file there
    assert done.returncode == 2 and "params file not found: notebooks/params/smoke/00_toyworld.yaml" in done.stderr
    assert f"read from the repository root {REPO_ROOT})" in done.stderr
