from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nltk
import numpy as np
import pytest

from divergen_lib.categories import (
    CandidateScore,
    ImageNetClass,
    imagenet_classes,
    merge_categories,
    nearest_by_path_similarity,
    open_clip_text_encoder,
    read_category_metadata,
    select_by_text_similarity,
    select_imagenet_extras,
    synset_of_wnid,
    target_synsets,
    write_category_metadata,
)
from divergen_lib.formats import FormatError
from divergen_lib.wordnet import (
    DEBIAN_WORDNET_DIR,
    LEXNAMES,
    WordNetUnavailable,
    lexnames_text,
    load_wordnet,
    missing_wordnet_files,
    prepare_wordnet_dir,
)

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "divergen_reference"
LVIS_CAT_INFO = REFERENCE_DIR / "lvis_v1_train_cat_info.json"
DIVERGEN_CAT_INFO = REFERENCE_DIR / "ImageNet2012_filtered04_lvis_v1_train_cat_info_250.json"
PAPER_SURVIVORS_AT_04 = (
    566  # DiverGen Sec. 4.3: the largest category-diversity setting, all qualifying ImageNet classes
)

needs_wordnet = pytest.mark.skipif(
    bool(missing_wordnet_files(DEBIAN_WORDNET_DIR)),
    reason=f"Debian WordNet files absent in {DEBIAN_WORDNET_DIR} (apt-get install wordnet-base wordnet-sense-index)",
)
needs_reference = pytest.mark.skipif(
    not (LVIS_CAT_INFO.is_file() and DIVERGEN_CAT_INFO.is_file()),
    reason=f"DiverGen reference data absent in {REFERENCE_DIR}",
)


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    if missing_wordnet_files(DEBIAN_WORDNET_DIR):
        pytest.skip(f"Debian WordNet files absent in {DEBIAN_WORDNET_DIR}")
    return load_wordnet(tmp_path_factory.mktemp("nltk_data"))


@pytest.fixture(scope="module")
def imagenet():
    return imagenet_classes()


@pytest.fixture(scope="module")
def lvis_selection(wordnet, imagenet):
    if not LVIS_CAT_INFO.is_file():
        pytest.skip(f"DiverGen reference data absent in {REFERENCE_DIR}")
    lvis = read_category_metadata(LVIS_CAT_INFO)
    return lvis, select_imagenet_extras(lvis, wordnet=wordnet, classes=imagenet)


def test_lexnames_numbers_the_45_lexicographer_files_as_nltk_reads_them():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    for i, line in enumerate(lines):
        number, name, category = line.split("\t")
        assert int(number) == i and len(number) == 2
        assert int(category) == {"noun": 1, "verb": 2, "adj": 3, "adv": 4}[name.split(".")[0]]


def test_missing_debian_files_name_the_apt_packages(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(WordNetUnavailable, match="apt-get install wordnet-base wordnet-sense-index"):
        prepare_wordnet_dir(tmp_path / "data", tmp_path / "src")
    with pytest.raises(WordNetUnavailable, match="apt-get install wordnet-base wordnet-sense-index"):
        load_wordnet(tmp_path / "data", source_dir=tmp_path / "src")


@needs_wordnet
def test_load_wordnet_builds_an_nltk_data_dir_with_real_files(tmp_path):
    reader = load_wordnet(tmp_path)
    corpus = tmp_path / "corpora" / "wordnet"
    assert nltk.data.path[0] == str(tmp_path.resolve())
    assert (corpus / "lexnames").read_text(encoding="utf-8") == lexnames_text()
    assert (corpus / "data.noun").is_file() and not (corpus / "data.noun").is_symlink()
    assert reader.get_version() == "3.0"
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    assert load_wordnet(tmp_path) is reader
    prepare_wordnet_dir(tmp_path)
    assert (corpus / "data.noun").stat().st_size == (DEBIAN_WORDNET_DIR / "data.noun").stat().st_size


@needs_wordnet
def test_load_wordnet_downloads_when_allowed_and_debian_files_are_missing(tmp_path, monkeypatch):
    def fake_download(package, download_dir, quiet):
        with zipfile.ZipFile(Path(download_dir) / "corpora" / "wordnet.zip", "w") as zf:
            zf.mkdir("wordnet")
            for name in ("lexnames", *(f.name for f in DEBIAN_WORDNET_DIR.iterdir())):
                data = lexnames_text() if name == "lexnames" else (DEBIAN_WORDNET_DIR / name).read_bytes()
                zf.writestr(f"wordnet/{name}", data)
        return package == "wordnet"

    (tmp_path / "src").mkdir()
    (tmp_path / "data" / "corpora").mkdir(parents=True)
    monkeypatch.setattr(nltk, "download", fake_download)
    reader = load_wordnet(tmp_path / "data", source_dir=tmp_path / "src", allow_download=True)
    assert reader.synset_from_pos_and_offset("n", 1440764).name() == "tench.n.01"


def test_imagenet_classes_pair_timm_wnids_with_clip_names(imagenet):
    assert len(imagenet) == 1000 and [c.index for c in imagenet] == list(range(1000))
    assert imagenet[0] == ImageNetClass(0, "n01440764", "tench")
    assert all(" " not in c.name for c in imagenet)


@needs_wordnet
def test_path_similarity_matches_nltk_pairwise(wordnet, imagenet):
    targets = [wordnet.synset(s) for s in ("shark.n.01", "bird.n.01", "dog.n.01", "car.n.01", "canine.n.02")]
    candidates = [synset_of_wnid(wordnet, c.wnid) for c in imagenet[::7]]
    for candidate, (similarity, t) in zip(candidates, nearest_by_path_similarity(candidates, targets), strict=True):
        pairwise = [candidate.path_similarity(target) for target in targets]
        assert similarity == max(pairwise)
        assert t == pairwise.index(max(pairwise))


@needs_wordnet
def test_unknown_target_synset_is_skipped_or_named(wordnet, imagenet):
    cats = [
        {"id": 1, "name": "dog", "synset": "dog.n.01"},
        {"id": 7, "name": "gizmo", "synset": "gizmo_thing.n.09"},
    ]
    with pytest.raises(ValueError, match=r"category id 7: synset 'gizmo_thing.n.09' not in WordNet"):
        target_synsets(cats, wordnet, strict=True)
    selection = select_imagenet_extras(cats, threshold=0.4, n=3, wordnet=wordnet, classes=imagenet[150:300])
    assert selection.skipped_target_ids == [7]
    assert {s.nearest_target_id for s in selection.scores} == {1}
    assert all(s.synset != "dog.n.01" for s in selection.survivors)
    dog = wordnet.synset("dog.n.01")
    expected = [c.name for c in imagenet[150:300] if synset_of_wnid(wordnet, c.wnid).path_similarity(dog) > 0.4]
    assert [s.name for s in selection.removed] == expected
    assert "Basenji" in expected and "Chihuahua" not in expected
    assert selection.selected_names == [s.name for s in selection.survivors[:3]]
    with pytest.raises(ValueError, match="category id 3: no 'synset'"):
        target_synsets([{"id": 3, "name": "x"}], wordnet)
    with pytest.raises(ValueError, match="category id 4: synset 'run.v.01' is not a noun"):
        target_synsets([{"id": 4, "name": "run", "synset": "run.v.01"}], wordnet)


@needs_wordnet
@needs_reference
def test_reproduces_divergen_extra_categories(lvis_selection):
    lvis, selection = lvis_selection
    reference = json.loads(DIVERGEN_CAT_INFO.read_text(encoding="utf-8"))
    merged = merge_categories(lvis, selection)
    assert len(selection.survivors) == PAPER_SURVIVORS_AT_04
    assert [(c["id"], c["name"], c["synset"]) for c in merged[len(lvis) :]] == [
        (c["id"], c["name"], c["synset"]) for c in reference[len(lvis) :]
    ]
    assert merged[: len(lvis)] == lvis
    assert [c["id"] for c in merged] == list(range(1, len(merged) + 1))
    extras = merged[len(lvis) :]
    assert all((c["image_count"], c["instance_count"], c["frequency"]) == (2000, 2000, "c") for c in extras)
    assert all(c["synonyms"] == [c["name"]] and c["def"] for c in extras)


@needs_wordnet
@needs_reference
def test_removed_classes_name_their_nearest_lvis_category(lvis_selection):
    lvis, selection = lvis_selection
    by_id = {c["id"]: c for c in lvis}
    assert len(selection.removed) + len(selection.survivors) == 1000
    for score in selection.removed:
        assert score.similarity > selection.threshold
        assert by_id[score.nearest_target_id]["synset"] == score.nearest_target_synset
    assert all(s.similarity <= 0.4 for s in selection.survivors)


def _fake_encoder(vectors: dict[str, list[float]]):
    calls = []

    def encode(names: list[str]) -> np.ndarray:
        calls.append(list(names))
        return np.array([vectors[n] for n in names])

    return encode, calls


def test_text_selector_keeps_dissimilar_candidates_in_order():
    vectors = {
        "cat": [1.0, 0.0, 0.0],
        "car": [0.0, 1.0, 0.0],
        "kitten": [5.0, 0.5, 0.0],  # close to cat, large norm
        "truck": [0.1, 0.2, 0.0],  # close to car, small norm
        "tree": [0.0, 0.0, 3.0],
        "cloud": [0.3, 0.0, 1.0],
        "rock": [0.0, 0.4, 1.0],
    }
    encode, calls = _fake_encoder(vectors)
    selection = select_by_text_similarity(
        ["cat", "car"], ["kitten", "truck", "tree", "cloud", "rock"], encode, threshold=0.5, n=2
    )
    assert calls == [["cat", "car"], ["kitten", "truck", "tree", "cloud", "rock"]]
    assert [s.name for s in selection.survivors] == ["tree", "cloud", "rock"]
    assert selection.selected_names == ["tree", "cloud"]
    kitten = selection.scores[0]
    assert kitten == CandidateScore(0, "kitten", pytest.approx(5 / np.hypot(5, 0.5)), "cat", False)
    assert selection.scores[3].nearest_target == "cat" and selection.scores[4].nearest_target == "car"
    merged = merge_categories(
        [{"id": 3, "name": "cat"}, {"id": 9, "name": "car"}],
        select_by_text_similarity(
            ["cat", "car"], ["tree", "rock"], encode, 0.5, 5, candidate_definitions=["a plant", "a stone"]
        ),
        image_count=7,
    )
    assert [(c["id"], c["name"], c["def"], c["image_count"]) for c in merged[2:]] == [
        (10, "tree", "a plant", 7),
        (11, "rock", "a stone", 7),
    ]


def test_text_selector_rejects_malformed_embeddings():
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(1, D\)"):
        select_by_text_similarity(["a"], ["b"], lambda names: np.zeros(3), threshold=0.5, n=1)
    with pytest.raises(ValueError, match="zero embedding"):
        select_by_text_similarity(["a"], ["b"], lambda names: np.zeros((len(names), 3)), threshold=0.5, n=1)


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    import open_clip

    name = "divergen-test-tiny-clip"
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    path = tmp_path_factory.mktemp("open_clip_configs") / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    open_clip.add_model_config(path)
    model = open_clip.create_model(name, pretrained=None).eval()
    return model, open_clip.get_tokenizer(name)


def test_open_clip_encoder_feeds_prompts_through_the_model(tiny_open_clip):
    import torch

    model, tokenizer = tiny_open_clip
    names = ["red_fox", "teapot", "street_sign"]
    encode = open_clip_text_encoder(model, tokenizer, batch_size=2)
    embeddings = encode(names)
    with torch.no_grad():
        direct = model.encode_text(tokenizer([f"a photo of a {n.replace('_', ' ')}" for n in names])).numpy()
    assert embeddings.shape == (3, 16)
    np.testing.assert_allclose(embeddings, direct, rtol=1e-5, atol=1e-6)
    selection = select_by_text_similarity(["teapot"], names, encode, threshold=0.99, n=5)
    assert selection.scores[1].similarity == pytest.approx(1.0)
    assert "teapot" not in selection.selected_names


def test_category_metadata_round_trip_and_errors(tmp_path):
    cats = [
        {
            "id": 1,
            "name": "tench",
            "synonyms": ["tench"],
            "def": "a fish",
            "synset": "tench.n.01",
            "image_count": 2000,
            "instance_count": 2000,
            "frequency": "c",
        }
    ]
    path = tmp_path / "cat_info.json"
    write_category_metadata(cats, path)
    assert read_category_metadata(path) == cats
    (tmp_path / "lvis.json").write_text(json.dumps({"categories": cats}), encoding="utf-8")
    assert read_category_metadata(tmp_path / "lvis.json") == cats
    (tmp_path / "bad.json").write_text(json.dumps([{k: v for k, v in cats[0].items() if k != "def"}]), encoding="utf-8")
    with pytest.raises(FormatError, match=r"bad.json: category id 1 lacks def"):
        read_category_metadata(tmp_path / "bad.json")
    (tmp_path / "dup.json").write_text(json.dumps(cats + cats), encoding="utf-8")
    with pytest.raises(FormatError, match=r"dup.json: category id 1 appears twice"):
        read_category_metadata(tmp_path / "dup.json")
