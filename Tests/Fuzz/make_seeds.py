#!/usr/bin/env python3
"""Writes the committed seeds of Tests/Fuzz/corpus/ (run once; Tools/fuzz.sh adds the fixtures).

    python3 Tests/Fuzz/make_seeds.py [TRACE_FOLDER]

Seeds that need a transformation of a fixture: the tiny model's tensor list for `bind`, the
pickles inside the zip fixtures for `pickle`, prompts from the fixtures' JSON, a PNG with text
chunks, and (given a folder from `pareidolia generate --trace`) a trace packed for `trace`.
"""
import json, os, struct, sys, zipfile, zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
fixtures = os.path.join(root, "Tests", "Fixtures")
corpus = os.path.join(root, "Tests", "Fuzz", "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# bind: one `DTYPE NAME DIMS…` line per tensor of the single-file tiny model.
with open(os.path.join(fixtures, "tiny-sd-single.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
lines = [f"{v['dtype']} {k} {' '.join(map(str, v['shape']))}" for k, v in header.items() if k != "__metadata__"]
put("bind", "tiny-sd-single.txt", "\n".join(lines) + "\n")
put("bind", "unet-only.txt", "\n".join(l for l in lines if "diffusion_model" in l) + "\n")

# pickle: data.pkl of the zip fixtures.
for name in ["state_dict_zip.pt", "a1111_embedding.pt", "diffusers_embedding.bin", "nested.ckpt"]:
    with zipfile.ZipFile(os.path.join(fixtures, "checkpoints", name)) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        put("pickle", name.replace(".", "-") + ".pkl", z.read(pkl))

# prompt, schedule: prompts of the schedule oracle and the tokenizer cases, a few by hand.
with open(os.path.join(fixtures, "prompt_schedules.json")) as f:
    schedules = json.load(f)["schedules"]
with open(os.path.join(fixtures, "tokenizer_cases.json")) as f:
    token_prompts = [c["prompt"] for c in json.load(f)]
by_hand = [
    "a (red:1.3) cat, [blue] dog BREAK corajr on a <winnie>, ((masterpiece)), \\(literal\\)",
    "[cat:dog:0.5] AND a hat :0.6 AND [a|b|c] BREAK (x:-1.5)",
    "(((((((((((((((((((a)))))))))))))))))))) [[[[[[[[[[b]]]]]]]]]] (c:1e308) (d:",
]
for i, p in enumerate([s["prompt"] for s in schedules[::60]] + token_prompts[::40] + by_hand):
    put("prompt", f"p{i:03}.txt", p)
for i, s in enumerate(schedules[::30]):
    put("schedule", f"s{i:03}.txt", bytes([s["steps"] - 1]) + s["prompt"].encode())

# infotext: A1111's and Pareidolia's parameters, as text and in a PNG.
a1111 = """photo of a witch and a robot dancing, contact improvisation
second line of the prompt
Negative prompt: blurry,
low quality
Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3754952516, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, TI hashes: "corajr: 1a2b3c4d5e6f, alex: 0123456789ab", Clip skip: 2, Version: v1.10.1"""
ours = """a witch and her black cat, [oil:watercolor:0.5] painting
Steps: 4, Sampler: euler_a (diffusers), CFG scale: 7.5, Seed: 1887838105, Size: 64x96, RNG: CPU, ENSD: 31337, Pareidolia remedy: "alex,cora; boxes 0,0,0.5,1;0.5,0,1,1; until 1; stage full", Version: Pareidolia 0.1"""
put("infotext", "a1111.txt", a1111)
put("infotext", "pareidolia.txt", ours)


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(texts, width=2, height=2):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, body in texts:
        out += chunk(kind, body)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


put("infotext", "a1111.png", png([(b"tEXt", b"parameters\x00" + a1111.encode())]))
put("png", "text.png", png([(b"tEXt", b"parameters\x00" + ours.encode()),
                            (b"zTXt", b"comment\x00\x00" + zlib.compress(b"compressed text")),
                            (b"iTXt", b"title\x00\x00\x00en\x00Titel\x00\xc3\xa9t\xc3\xa9")]))

# trace: run.json, latents, attention, image and runs.json of a real trace, between markers.
if len(sys.argv) > 1:
    marker = b"\n@@pareidolia-fuzz-file@@\n"
    folder = sys.argv[1]
    parts = []
    for name in ["run.json", "latents.safetensors", "attention.safetensors", "image.png", "runs.json"]:
        path = os.path.join(folder, name)
        parts.append(open(path, "rb").read() if os.path.exists(path) else b"")
    put("trace", "tiny-sd-trace", marker.join(parts))
