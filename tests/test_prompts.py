from pathlib import Path

import pytest

from divergen_lib.prompts import (
    WHITE_BACKGROUND,
    LocalLLM,
    PromptConfig,
    PromptError,
    attribute_prompts,
    category_prompts,
    load_prompt_folder,
    template_prompt,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "divergen_reference"
CATEGORY = {"id": 7, "name": "bottle_opener", "def": "an opener for removing caps or corks from bottles."}


def test_template_is_divergens():
    assert template_prompt("bottle_opener", "an opener for bottles.") == (
        "a photo of a single bottle opener, an opener for bottles., in a white background"
    )


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="DiverGen reference data (../shared/data) not present")
def test_divergen_prompt_folders_load_and_template_matches_their_lvis_prompts():
    import json

    cats = json.loads((REFERENCE / "lvis_v1_train_cat_info.json").read_text())
    ids = [c["id"] for c in cats]
    gpt = load_prompt_folder(REFERENCE / "prompts" / "gpt_prompt", ids)
    assert len(gpt) == 144 and all(len(v) == 128 for v in gpt.values())
    lvis = load_prompt_folder(REFERENCE / "prompts" / "lvis_prompt", ids)
    assert not set(gpt) & set(lvis) and len(gpt) + len(lvis) == 1203
    by_id = {c["id"]: c for c in cats}
    assert all(lines == [template_prompt(by_id[i]["name"], by_id[i]["def"])] for i, lines in lvis.items())


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("99.txt", f"a cat{WHITE_BACKGROUND}\n", r"99\.txt: category id 99 is not in the category metadata"),
        ("7.txt", "\n\n", r"7\.txt: empty prompt file"),
        ("7.txt", f"a cat{WHITE_BACKGROUND}\na dog on grass\n", r"7\.txt:2: prompt does not end with"),
        ("seven.txt", "x", "named <category id>.txt"),
    ],
)
def test_malformed_prompt_files_are_named(tmp_path, name, text, message):
    folder = write(tmp_path / "prompts", name, text)
    with pytest.raises(PromptError, match=message):
        load_prompt_folder(folder, [7, 8])


def test_missing_prompt_folder(tmp_path):
    with pytest.raises(PromptError, match="prompt folder not found"):
        load_prompt_folder(tmp_path / "nope", [1])


def test_attribute_prompts_are_distinct_deterministic_and_well_formed():
    prompts = attribute_prompts("bottle_opener", 40, seed=3)
    assert len(set(prompts)) == 40 and prompts == attribute_prompts("bottle_opener", 40, seed=3)
    assert prompts != attribute_prompts("bottle_opener", 40, seed=4)
    assert all("bottle opener" in p and p.endswith(WHITE_BACKGROUND) for p in prompts)
    with pytest.raises(ValueError, match="distinct attribute prompts exist"):
        attribute_prompts("x", 10**7, seed=0)


def test_category_prompts_record_sources_in_divergen_order(tmp_path):
    files = {
        7: [f"A photo of a brass bottle opener{WHITE_BACKGROUND}", f"An image of a bottle opener{WHITE_BACKGROUND}"]
    }
    divergen = category_prompts(CATEGORY, PromptConfig(template="without_file"), 0, files)
    assert [p.source for p in divergen] == ["llm-file", "llm-file"]
    mixed = category_prompts(CATEGORY, PromptConfig(template="always", attributes=3), 0, files)
    assert [p.source for p in mixed] == ["template", "llm-file", "llm-file", "attributes", "attributes", "attributes"]
    assert [p.index for p in mixed] == list(range(6))
    with pytest.raises(PromptError, match="has no prompt"):
        category_prompts(CATEGORY, PromptConfig(template="never"), 0, {})


def test_xpaste_generation_prompts_are_configurable(tmp_path):
    """X-Paste generates with ``a photo of a single {name}`` and no background suffix: its own prompt files (or any
    without DiverGen's suffix) load, and attribute prompts end where the text ends."""
    xpaste = PromptConfig(template="always", template_text="a photo of a single {name}", suffix="", attributes=2)
    prompts = category_prompts(CATEGORY, xpaste, 0)
    assert prompts[0].text == "a photo of a single bottle opener"
    assert [p.source for p in prompts] == ["template", "attributes", "attributes"]
    assert all("bottle opener" in p.text and "background" not in p.text for p in prompts)
    (tmp_path / "7.txt").write_text("a photo of a single bottle opener on a table\n")
    assert load_prompt_folder(tmp_path, [7], None) == {7: ["a photo of a single bottle opener on a table"]}
    with pytest.raises(PromptError, match="does not end with"):
        load_prompt_folder(tmp_path, [7], PromptConfig().suffix)


@pytest.mark.parametrize(
    ("text", "message"),
    [("a photo of a {cat}", "only {name} and {definition}"), ("a photo of a thing", "does not name the category")],
)
def test_a_template_text_that_cannot_be_filled_is_one_line(text, message):
    with pytest.raises(ValueError, match=message):
        PromptConfig(template_text=text)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A random-weight Llama of the real architecture with a small word-level tokenizer, saved locally."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "red blue wooden metal bottle opener photo of a an with handle shiny old small large".split()
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[EOS]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=2,
    )
    path = tmp_path_factory.mktemp("tiny_llm")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_local_llm_hook_writes_prompts_through_transformers(tiny_llm):
    llm = LocalLLM(tiny_llm)
    prompts = llm.prompts("bottle_opener", "an opener", n=3, seed=1, max_new_tokens=8)
    assert 1 <= len(prompts) <= 3 and len(set(prompts)) == len(prompts)
    assert all(p.endswith(WHITE_BACKGROUND) for p in prompts)
    assert prompts == LocalLLM(tiny_llm).prompts("bottle_opener", "an opener", n=3, seed=1, max_new_tokens=8)
    listed = category_prompts(CATEGORY, PromptConfig(template="always", llm_prompts=3), 0, None, llm)
    assert {p.source for p in listed} == {"template", "llm"}


def test_local_llm_bad_path_is_one_clear_error(tmp_path):
    with pytest.raises(PromptError, match="no usable model there and downloads are off"):
        LocalLLM(tmp_path / "no_model")
