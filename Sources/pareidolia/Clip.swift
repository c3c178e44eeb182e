import Analysis
import ArgumentParser
import Foundation
import Imaging
import Models
import Reports
import Tensors

struct Clip: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "CLIP similarity of a run's x̂₀ at every K-th evaluation with its prompt, phrases and negative prompt (stored in the trace); or of an image with phrases.")

    @Option(name: .long, help: "A Hugging Face CLIPModel folder (default: the embedded model's, Assets/demo-clip).")
    var clipModel: String?

    @Option(name: .long, help: "Score this PNG instead of a trace.")
    var image: String?

    @Option(name: .long, help: "Extra phrases, separated by ';'.")
    var phrases: String?

    @Option(name: .long, help: "Measure every K-th evaluation (the last is always measured).")
    var every = 1

    @Option(name: .long, help: "Decode x̂₀ with this model's VAE instead of the one run.json names.")
    var model: String?

    @Option(name: .long, help: "full: decode x̂₀ whole, as the image (default); reduced: from a latent shrunk to the CLIP's input size (224 px for ViT-L: about 4× cheaper at 512 px, but on the demo model cosines moved by 0.10 on average, see docs/PERFORMANCE.md).")
    var decode = "full"

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Argument(help: "Trace folders (generate --trace), or sweep folders.")
    var traces: [String] = []

    func run() throws {
        try BLAS.load()
        let clipPath: String
        do { clipPath = URL(fileURLWithPath: try clipModel ?? DefaultModel.clipPath()).standardizedFileURL.path } catch { throw CLIError("--clip-model: \(error)") }
        let scorer: CLIPScorer
        do { scorer = try CLIPScorer(folder: clipPath) } catch { throw CLIError("--clip-model \(clipPath): \(error)") }
        let extra = ClipSimilarity.listedPhrases(phrases)
        if let image {
            guard !extra.isEmpty else { throw CLIError("--phrases: give the phrases to score the image against") }
            let picture: RGBImage
            do { picture = try readPNG(image) } catch { throw CLIError("--image \(image): \(error)") }
            let (cos, norm) = try scorer.score(rgb: picture.pixels, width: picture.width, height: picture.height, phrases: extra)
            if json {
                let o: [String: Any] = ["image": image, "clip_model": clipPath, "image_embedding_norm": norm,
                                        "phrases": zip(extra, cos).map { ["phrase": $0.0, "cosine": Double($0.1)] }]
                print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
            } else {
                print("\(image) (image embedding norm \(String(format: "%.3f", norm)))")
                for (p, c) in zip(extra, cos) { print(String(format: "  %.4f  %@", c, p)) }
            }
            return
        }
        guard let mode = ClipSimilarity.Decode(rawValue: decode) else { throw CLIError("--decode \(decode): expected reduced or full") }
        guard !traces.isEmpty else { throw CLIError("give trace folders, or --image FILE.png") }
        let folders = try traceFolders(traces)
        let bar = ProgressBar(label: "clip")
        var results: [[String: Any]] = []
        var vaes: [String: AutoencoderKL] = [:]  // a sweep's seeds share one model: load its VAE once
        for folder in folders {
            do {
                let t = try ReportTrace(directory: folder)
                let modelPath = try ReportBuilder.modelPath(for: t, override: model, otherwise: "")
                let vae = try vaes[modelPath] ?? StableDiffusionModel.loadVAEDecoder(modelPath)
                vaes[modelPath] = vae
                let s = try ClipSimilarity(trace: t, scorer: scorer, vae: vae, every: every, extra: extra, decode: mode) { bar.tick(label: "clip \(URL(fileURLWithPath: folder).lastPathComponent)", done: $0, total: $1) }
                try s.write(into: folder, clipModel: clipPath)
                if json {
                    results.append(["trace": folder, "evaluations": s.evaluations, "decode": s.decode.rawValue,
                                    "decoded_size": [s.decodedHeight, s.decodedWidth], "seconds_per_measurement": s.secondsPerMeasurement,
                                    "final": zip(s.labels, zip(s.kinds, s.similarity.last ?? [])).map { ["label": $0.0, "kind": $0.1.0, "cosine": Double($0.1.1)] }])
                } else {
                    print("\(folder): \(s.evaluations.count) measurements (\(s.decode.rawValue) decode, \(s.decodedWidth)×\(s.decodedHeight)), \(String(format: "%.2f", s.secondsPerMeasurement)) s each; final:")
                    for (l, v) in zip(s.labels, s.similarity.last ?? []) { print(String(format: "  %.4f  %@", v, l)) }
                }
            } catch let e as CLIError { throw e } catch { throw CLIError("\(folder): \(error)") }
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: ["clip_model": clipPath, "traces": results], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
        }
    }
}
