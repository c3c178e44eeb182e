"""A tiny random transformers CLIPModel (text + vision towers with projections) and its outputs,
for the Swift CLIP's parity test (Tests/Fixtures/tiny-clip, committed; CI needs no Python).

    /work/venv/bin/python Tools/reference/make_clip_fixtures.py
    /work/venv/bin/python Tools/reference/make_clip_fixtures.py --full-size DIR
        Writes a random-weight CLIPModel of openai/clip-vit-large-patch14's architecture (ViT-L/14
        at 224 px, SD 1.x's text tower, projection 768) with the SD tokenizer files and the
        CLIPImageProcessor defaults into DIR: what `pareidolia-bench clip` times at 512 px.
    /work/venv/bin/python Tools/reference/make_clip_fixtures.py --bin
        tiny-clip's weights again as a float16 pytorch_model.bin (torch.save's zip) in
        Tests/Fixtures/tiny-clip-bin: the other file format and precision a CLIP folder may hold.
    /work/venv/bin/python Tools/reference/make_clip_fixtures.py --demo
        transformers' CLIPModel (Assets/demo-clip, its own preprocessor_config.json) on the two
        demo-model pictures in Tests/Fixtures/demo-clip: each phrase's cosine and the image
        embedding's norm, as `pareidolia clip --image` must print them (demo-clip/scores.json).
"""
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "tiny-clip"


def main() -> None:
    torch.manual_seed(0)
    # A small vocabulary keeps the file small; ids stay below it, eos is its last id.
    text = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                bos_token_id=998, eos_token_id=999, pad_token_id=999)
    vision = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=3, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    # Random init leaves some weights at exact zeros/ones; perturb so every path is exercised.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(OUT), safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    ids = torch.full((2, 77), 999, dtype=torch.long)
    ids[0, :5] = torch.tensor([998, 5, 17, 230, 999])
    ids[1, :3] = torch.tensor([998, 640, 999])
    with torch.no_grad():
        image_embeds = model.get_image_features(pixel_values=pixels)
        text_embeds = model.get_text_features(input_ids=ids)
        vision_states = model.vision_model(pixel_values=pixels).last_hidden_state
    if not isinstance(image_embeds, torch.Tensor):  # transformers 5 may return an output object
        image_embeds, text_embeds = image_embeds.pooler_output, text_embeds.pooler_output
    save_file({"pixel_values": pixels.contiguous(), "input_ids": ids.to(torch.int32).contiguous(),
               "image_embeds": image_embeds.contiguous(), "text_embeds": text_embeds.contiguous(),
               "vision_last_hidden_state": vision_states.contiguous()},
              str(OUT / "expected.safetensors"))
    print(OUT, image_embeds.shape, text_embeds.shape)
    preprocessing()


def preprocessing() -> None:
    """CLIPImageProcessor (its Pillow path) on synthetic images: a 300x200 landscape at the real
    224 size (downscaling, antialiased), and at size 64 a 128x128 square and a 97x411 portrait."""
    import numpy as np
    from PIL import Image
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # older transformers: the Pillow path is the only one
        from transformers import CLIPImageProcessor as Processor
    rng = np.random.default_rng(3)
    cases = {}
    for name, (w, h, size) in {"landscape": (300, 200, 224), "square": (128, 128, 64), "portrait": (97, 411, 64)}.items():
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 64 * 4], axis=-1)
        img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)   # [H, W, 3]
        proc = Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        px = proc(images=Image.fromarray(img), return_tensors="pt")["pixel_values"]  # [1, 3, S, S]
        cases[f"{name}_rgb"] = torch.from_numpy(img)  # uint8 [H, W, 3]
        cases[f"{name}_pixels"] = px.to(torch.float16)
    save_file({k: v.contiguous() for k, v in cases.items()}, str(OUT / "preprocessing.safetensors"))


def full_size(out: Path) -> None:
    from transformers import CLIPImageProcessor
    torch.manual_seed(0)
    text = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    vision = dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                  num_attention_heads=16, hidden_act="quick_gelu")
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=768)).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(str(out))
    tokenizer = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "tiny-sd" / "tokenizer"
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"):
        if (tokenizer / name).exists():
            shutil.copy(tokenizer / name, out / name)
    print(out, sum(p.numel() for p in model.parameters()), "parameters")


def bin_copy() -> None:
    from safetensors.torch import load_file
    out = OUT.parent / "tiny-clip-bin"
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.half().contiguous() for k, v in load_file(str(OUT / "model.safetensors")).items()}
    torch.save(state, str(out / "pytorch_model.bin"))
    shutil.copy(OUT / "config.json", out / "config.json")
    # What transformers makes of that file, computed in float32 (the fp16 weights widened).
    model = CLIPModel.from_pretrained(str(out), torch_dtype=torch.float32).eval()
    expected = load_file(str(OUT / "expected.safetensors"))
    with torch.no_grad():
        image = model.get_image_features(pixel_values=expected["pixel_values"])
        text = model.get_text_features(input_ids=expected["input_ids"].long())
    image, text = getattr(image, "pooler_output", image), getattr(text, "pooler_output", text)
    save_file({"image_embeds": image.contiguous(), "text_embeds": text.contiguous()}, str(out / "expected.safetensors"))
    print(out, len(state), "tensors")


DEMO_PHRASES = ["a red circle to the left of a blue square", "striped background", "two small yellow stars",
                "a purple triangle", "a green star on a dotted background"]


def demo() -> None:
    import json
    from PIL import Image
    from transformers import CLIPTokenizer
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    root = Path(__file__).resolve().parents[2]
    folder, fixtures = root / "Assets" / "demo-clip", root / "Tests" / "Fixtures" / "demo-clip"
    model = CLIPModel.from_pretrained(str(folder)).float().eval()
    processor, tokenizer = Processor.from_pretrained(str(folder)), CLIPTokenizer.from_pretrained(str(folder))
    ids = tokenizer(DEMO_PHRASES, padding="max_length", max_length=77, return_tensors="pt")
    scores = {}
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
        text = getattr(text, "pooler_output", text)
        for name in ("square.png", "wide.png"):
            pixels = processor(images=Image.open(fixtures / name).convert("RGB"), return_tensors="pt")["pixel_values"]
            image = model.get_image_features(pixel_values=pixels)
            image = getattr(image, "pooler_output", image)
            cos = torch.nn.functional.cosine_similarity(image, text)
            scores[name] = {"image_embedding_norm": image.norm().item(),
                            "cosines": {p: c.item() for p, c in zip(DEMO_PHRASES, cos)}}
    (fixtures / "scores.json").write_text(json.dumps(scores, indent=1, sort_keys=True) + "\n")
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--full-size":
        full_size(Path(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "--bin":
        bin_copy()
    elif len(sys.argv) == 2 and sys.argv[1] == "--demo":
        demo()
    else:
        main()
