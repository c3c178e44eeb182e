import ArgumentParser
import Foundation
import Models
import Tensors

/// The full-size SD 1.5 architecture: text encoding, one UNet evaluation (CFG batch), VAE decode,
/// peak memory — beside PyTorch (diffusers, CPU, same thread count) measured in the same run.
struct ModelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Text encoder, UNet (batch 2, 64×64 latents) and VAE decode (512×512) vs diffusers.")

    @Option(help: "A full-size SD 1.5 diffusers folder (Tools/reference/make_fixtures.py --full-size DIR).")
    var model: String

    @Option(help: "Python with torch and diffusers, to measure PyTorch in the same run (skipped when absent).")
    var python: String?

    @Option(help: "Timed repetitions (the best is reported).")
    var repeats = 1

    @Option(help: "Latent side (64 for 512×512).")
    var latent = 64

    @Option(help: "Parts to time, comma-separated: text, unet, vae (default all three).")
    var parts = "text,unet,vae"

    func run() throws {
        try BLAS.load()
        print("OpenBLAS core: \(BLAS.coreName), \(BLAS.threads) threads")
        let t0 = DispatchTime.now().uptimeNanoseconds
        let sd = try StableDiffusionModel.load(model, vaeEncoder: false)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9

        let ids = [sd.tokenizer.encode("a burning cyborg skiing down a blue wireframe mountain at top speed, octane render, 8k"),
                   sd.tokenizer.encode("")]
        let chosen = Set(parts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        guard chosen.isSubset(of: ["text", "unet", "vae"]), !chosen.isEmpty else { throw ValidationError("--parts: expected text, unet and/or vae") }
        let textSeconds = chosen.contains("text") ? try bestSeconds(repeats: repeats) { _ = try sd.textEncoder.encode(ids) } : .nan
        let context = try sd.textEncoder.encode(ids)  // [2, 77, 768]
        let sample = Tensor.random([2, 4, latent, latent], seed: 11)
        let unetSeconds = chosen.contains("unet") ? try bestSeconds(repeats: repeats) { _ = try sd.unet(sample, timesteps: [981], context: context) } : .nan
        let z = Tensor.random([1, 4, latent, latent], seed: 12)
        let vaeSeconds = chosen.contains("vae") ? try bestSeconds(repeats: repeats) { _ = try sd.vae.decode(z) } : .nan
        let rss = peakRSSBytes()

        var torch: [String: Any]?
        if let python {
            torch = try runTorch(python: python, model: model, repeats: repeats, latent: latent)
        }
        var table = Table(columns: ["", "Pareidolia", "PyTorch", "ratio"])
        func row(_ name: String, _ ours: Double, _ key: String, digits: Int = 2, unit: String = "s") {
            let theirs = torch?[key] as? Double
            table.add([name, fmt(ours, digits) + " " + unit, theirs.map { fmt($0, digits) + " " + unit } ?? "–",
                       theirs.map { fmt(ours / $0, 2) } ?? "–"])
        }
        row("load", loadSeconds, "load_s")
        row("text encoder (2×77 tokens)", textSeconds, "text_encoder_s", digits: 3)
        row("UNet eval (batch 2, \(latent)×\(latent))", unetSeconds, "unet_s")
        row("VAE decode (\(latent * 8)×\(latent * 8))", vaeSeconds, "vae_decode_s")
        let theirRSS = (torch?["peak_rss_bytes"] as? Double).map { $0 / 1_073_741_824 }
        table.add(["peak RSS", fmt(Double(rss) / 1_073_741_824, 2) + " GiB", theirRSS.map { fmt($0, 2) + " GiB" } ?? "–",
                   theirRSS.map { fmt(Double(rss) / 1_073_741_824 / $0, 2) } ?? "–"])
        print(table.render())
        print("ratio < 1: Pareidolia is faster / smaller. PyTorch: \(torch?["torch"] as? String ?? "not measured"), \(torch?["threads"] ?? "–") threads.")
        let weights = ["unet", "vae", "text_encoder"].reduce(0) { $0 + (sd.unusedKeys[$1]?.count ?? 0) }
        if weights > 0 { print("note: \(weights) checkpoint keys unused") }
    }
}

/// Runs Tools/reference/bench_torch.py (PyTorch through diffusers, same thread count) and reads
/// its JSON; `extra` adds arguments (e.g. `--generate 20`).
func runTorch(python: String, model: String, repeats: Int, latent: Int, extra: [String] = []) throws -> [String: Any] {
    try runPythonBench(python: python, script: "bench_torch.py",
                       arguments: ["--model", model, "--threads", "\(Parallel.workers)", "--repeats", "\(repeats)", "--latent", "\(latent)"] + extra)
}

/// Runs Tools/reference/SCRIPT with `--json OUT` added and returns what it wrote.
func runPythonBench(python: String, script name: String, arguments: [String]) throws -> [String: Any] {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tools/reference/\(name)").path
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-torch-\(getpid()).json")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = [script] + arguments + ["--json", out.path]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0, let data = try? Data(contentsOf: out),
          let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { throw ValidationError("\(script) failed (status \(p.terminationStatus))") }
    try? FileManager.default.removeItem(at: out)
    return json
}

/// Peak resident set size of this process: VmHWM from /proc/self/status (getrusage's ru_maxrss
/// as a fallback, in KiB on Linux).
func peakRSSBytes() -> Int {
    if let bytes = processStatusBytes("VmHWM") { return bytes }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// Current resident set size (VmRSS; 0 where /proc is missing).
func residentBytes() -> Int { processStatusBytes("VmRSS") ?? 0 }

/// A "kB" field of /proc/self/status, in bytes.
func processStatusBytes(_ field: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
          let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
    return kib * 1024
}
