import ArgumentParser
import Foundation
import Analysis
import Models
import Reports
import Tensors

/// What CLIP similarity costs per measurement, and what decoding x̂₀ from a shrunk latent costs in
/// similarity: every trace measured both ways (`pareidolia clip --decode full|reduced`), each
/// difference in cosine over every evaluation and label, and whether the final ranking changes;
/// with --python, one measurement of each kind by diffusers + transformers beside ours.
struct ClipBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip",
        abstract: "CLIP similarity of traces with x̂₀ decoded whole and from a shrunk latent: seconds per measurement and the cosines' differences.")

    @Option(help: "A Hugging Face CLIPModel folder.")
    var clipModel: String

    @Option(help: "Measure every K-th evaluation.")
    var every = 1

    @Option(help: "Decode with this model's VAE instead of the one each run.json names.")
    var model: String?

    @Option(help: "Python with torch, diffusers and transformers: times the same measurement there (Tools/reference/bench_clip_torch.py, on the first trace's sizes).")
    var python: String?

    @Argument(help: "Trace folders (generate --trace), or sweep folders. Nothing is written into them.")
    var traces: [String]

    func run() throws {
        try BLAS.load()
        let scorer = try CLIPScorer(folder: clipModel)
        var table = Table(columns: ["trace", "latent", "reduced to", "full s", "reduced s", "ratio", "max |Δcos|", "mean |Δcos|", "same final order"])
        var worst = 0.0, sum = 0.0, count = 0, sameOrder = 0
        let folders = try traces.flatMap(TraceWordMaps.traceFolders)
        var first: (model: String, latent: [Int], reduced: [Int], full: ClipSimilarity, small: ClipSimilarity)?
        var vaes: [String: AutoencoderKL] = [:]
        for folder in folders {
            let t = try ReportTrace(directory: folder)
            let modelPath = try ReportBuilder.modelPath(for: t, override: model, otherwise: "")
            let vae = try vaes[modelPath] ?? StableDiffusionModel.loadVAEDecoder(modelPath)
            vaes[modelPath] = vae
            let full = try ClipSimilarity(trace: t, scorer: scorer, vae: vae, every: every, decode: .full)
            let reduced = try ClipSimilarity(trace: t, scorer: scorer, vae: vae, every: every, decode: .reduced)
            if first == nil {
                first = (modelPath, [t.latentHeight, t.latentWidth], [reduced.decodedHeight / 8, reduced.decodedWidth / 8], full, reduced)
            }
            var traceWorst = 0.0, traceSum = 0.0, n = 0
            for (a, b) in zip(full.similarity, reduced.similarity) {
                for (x, y) in zip(a, b) { traceWorst = max(traceWorst, Double(abs(x - y))); traceSum += Double(abs(x - y)); n += 1 }
            }
            func order(_ s: ClipSimilarity) -> [Int] { (s.similarity.last ?? []).enumerated().sorted { $0.element > $1.element }.map(\.offset) }
            let same = order(full) == order(reduced)
            (worst, sum, count, sameOrder) = (max(worst, traceWorst), sum + traceSum, count + n, sameOrder + (same ? 1 : 0))
            table.add([URL(fileURLWithPath: folder).lastPathComponent, "\(t.latentWidth)×\(t.latentHeight)",
                       "\(reduced.decodedWidth / 8)×\(reduced.decodedHeight / 8)", fmt(full.secondsPerMeasurement, 3),
                       fmt(reduced.secondsPerMeasurement, 3), fmt(reduced.secondsPerMeasurement / full.secondsPerMeasurement, 2),
                       String(format: "%.4f", traceWorst), String(format: "%.4f", traceSum / Double(max(1, n))), same ? "yes" : "no"])
        }
        print("CLIP \(clipModel) (input \(scorer.processor.size) px), every \(every); OpenBLAS \(BLAS.coreName), \(Parallel.workers) threads")
        print("full: x̂₀ decoded whole, shrunk by the preprocessor; reduced: decoded from a latent shrunk (antialiased) to the CLIP's size / 8")
        print(table.render())
        print(String(format: "all %d traces: max |Δcos| %.4f, mean %.4f; final ranking unchanged in %d of %d", folders.count, worst,
                     sum / Double(max(1, count)), sameOrder, folders.count))
        guard let python, let f = first else { return }
        let torch = try runPythonBench(python: python, script: "bench_clip_torch.py", arguments: [
            "--model", f.model, "--clip", clipModel, "--threads", "\(Parallel.workers)", "--repeats", "2",
            "--latent", f.latent.map(String.init).joined(separator: ","), "--reduced", f.reduced.map(String.init).joined(separator: ",")])
        var peers = Table(columns: ["one measurement (decode + CLIP)", "Pareidolia s", "of it decode s", "PyTorch s", "ratio"])
        for (name, s, key) in [("full: latent \(f.latent[1])×\(f.latent[0])", f.full, "full_s"), ("reduced: latent \(f.reduced[1])×\(f.reduced[0])", f.small, "reduced_s")] {
            let theirs = torch[key] as? Double ?? .nan
            peers.add([name, fmt(s.secondsPerMeasurement, 3), fmt(s.decodeSecondsPerMeasurement, 3), fmt(theirs, 3), fmt(s.secondsPerMeasurement / theirs, 2)])
        }
        print("PyTorch \(torch["torch"] as? String ?? "?") (\(torch["cpu_capability"] as? String ?? "?"), \(torch["threads"] ?? "?") threads): diffusers' VAE, transformers' CLIPImageProcessor and CLIPModel, best of 2 on a random latent of the first trace's size; ratio = Pareidolia / PyTorch")
        print(peers.render())
    }
}
