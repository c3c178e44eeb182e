@testable import Checkpoints
@testable import Diffusion
import Foundation
import Imaging
import Reports
@testable import Models
import Workbench

// Readers of text and small files: JSON, prompts, infotexts, PNG text chunks.

let textTargets: [FuzzTarget] = [
    FuzzTarget(name: "json", about: "JSON readers: safetensors headers, UNet/VAE/CLIP configs, vocab.json, tokenizer.json") { bytes in
        _ = try? JSONParser.parse(bytes)
        let data = Data(bytes)
        _ = try? UNetConfig(json: data, source: "config.json")
        _ = try? VAEConfig(json: data, source: "config.json")
        _ = try? CLIPTextConfig(json: data, source: "config.json")
        _ = try? CLIPVocabulary(tokenizerJSON: data, source: "tokenizer.json")
        _ = try CLIPVocabulary(vocabJSON: data, mergesText: "#version: 0.2\na b\n", source: "tokenizer")
    },
    FuzzTarget(name: "tokenizer", about: "the CLIP tokenizer on any bytes (invalid UTF-8 too), and merges.txt", usesVocabulary: true) { bytes in
        let s = text(bytes)
        let tokens = sharedTokenizer.tokenize(s)
        _ = sharedTokenizer.encode(s)
        for t in tokens.prefix(100) { _ = sharedTokenizer.decode(t.id) }
        if let id = bytes.first { _ = sharedTokenizer.decode(Int32(id) * 200 - 1000) }  // ids outside the table too
        _ = try CLIPVocabulary(openAIMerges: s, source: "merges.txt")
    },
    FuzzTarget(name: "prompt", about: "the A1111 prompt parser and chunker: brackets, weights, BREAK, embedding triggers", usesVocabulary: true) { bytes in
        let s = text(bytes)
        _ = PromptParser.parse(s)
        let chunker = PromptChunker(tokenizer: sharedTokenizer, embeddings: fuzzEmbeddings)
        let result = chunker.chunk(s)
        _ = result.rows(tokenizer: sharedTokenizer)
        _ = PromptChunker.unusedTriggers(fuzzEmbeddings, prompt: s, negative: s, tokenizer: sharedTokenizer)
    },
    FuzzTarget(name: "schedule", about: "A1111's prompt-editing grammar: [from:to:when], [a|b], AND") { bytes in
        // The first byte is the step count, so schedules meet both few and many steps.
        guard let first = bytes.first else { return }
        let s = text(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
        let schedule = PromptSchedule(s, steps: Int(first) + 1)
        for call in [0, Int(first) / 2, Int(first), Int(first) + 5] { _ = schedule.text(at: call) }
        _ = schedule.texts
        for part in ComposedPrompt(s).parts { _ = PromptParser.parse(part.text) }
    },
    FuzzTarget(name: "infotext", about: "the infotext reader (A1111 parameters) and recipe, from text or a PNG") { bytes in
        let parsed = Infotext.parse(text(bytes))
        if let recipe = try? Infotext.recipe(parsed, base: GenerationSettings(prompt: "")) {
            _ = recipe.embeddingWarnings(given: [("trigger", "trigger.pt")])
            _ = recipe.modelWarning(modelHash: "0123456789")
        }
        if let remedy = parsed.value("Pareidolia remedy") { _ = try? Separation(infotext: remedy) }
        let path = writeScratch(bytes, "infotext.png")
        _ = try InfotextFile.recipe(path)
    },
    FuzzTarget(name: "png", about: "PNG text chunks (libpng through CPNGText) and PNG images as reports read them") { bytes in
        _ = try? PNGFile.readText(Data(bytes), source: "fuzz.png")
        let path = writeScratch(bytes, "image.png")
        _ = try readPNG(path)
    },
]

/// Two embeddings whose triggers the prompt fuzzer finds in its dictionary.
let fuzzEmbeddings: [PromptEmbedding] = ["corajr", "<winnie>"].map { trigger in
    PromptEmbedding(trigger: trigger, ids: sharedTokenizer.tokenize(trigger).map(\.id),
                    vectors: [[Float](repeating: 0.5, count: 8), [Float](repeating: -0.5, count: 8)])
}
