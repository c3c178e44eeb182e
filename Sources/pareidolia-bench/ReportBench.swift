import ArgumentParser
import Diffusion
import Foundation
import Models
import Probes
import Tensors

/// Every speed and memory figure of the engine in one table, beside PyTorch (diffusers) measured
/// in the same command: text encoder, UNet evaluation, VAE decode, a whole txt2img run (plain and
/// with the default trace) and the peak memory of a generation, for each way of holding weights.
struct ReportBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One table: Pareidolia (fp32, 16-bit weights, fast modes) vs PyTorch, model calls to whole runs.")

    @Option(help: "A full-size SD 1.5 diffusers folder (Tools/reference/make_fixtures.py --full-size DIR).")
    var model: String

    @Option(help: "Python with torch and diffusers (PyTorch columns are left empty without it).")
    var python: String?

    @Option(help: "Python with OpenVINO and optimum-intel, in their own venv (the OpenVINO column is left out without it; see docs/PERFORMANCE.md).")
    var openvino: String?

    @Option(help: "Where OpenVINO's IR of --model is kept (exported there on the first run, minutes); default: beside --model, with -openvino appended.")
    var openvinoExport: String?

    @Option(help: "Steps of the whole txt2img run (euler_a); 0 skips the whole runs.")
    var steps = 20

    @Option(help: "Latent side (64 for 512×512).")
    var latent = 64

    @Option(help: "Timed repetitions of each model call (the best is reported).")
    var repeats = 1

    @Option(help: "Rounds: PyTorch, then every variant, this many times over; each time is the best over the rounds, so a machine shared with other work slows both sides alike.")
    var rounds = 1

    @Option(help: "Engine variants to measure, comma-separated: a weight precision (fp32, fp16, bf16) with the default kernels (Winograd), or other kernels after a + (fp32+none: the plain path; fp32+bf16, fp16+all: fast modes).")
    var variants = "fp32,fp16,fp32+none"

    /// One way of running the engine.
    struct Variant: CustomStringConvertible {
        let precision: Precision
        let fast: FastMath
        let text: String
        init(_ text: String) throws {
            let parts = text.split(separator: "+", maxSplits: 1).map(String.init)
            guard let p = Precision(rawValue: parts[0]) else { throw ValidationError("--variants: \(parts[0]) is not fp32, fp16 or bf16") }
            precision = p
            fast = try parts.count > 1 ? FastMath(parsing: parts[1]) : .default
            self.text = text
        }
        var description: String { text }
    }

    static let prompt = "a burning cyborg skiing down a blue wireframe mountain at top speed, octane render, 8k"

    struct Figures {
        var text = Double.nan, unet = Double.nan, vae = Double.nan
        var run = Double.nan, tracedRun = Double.nan, peakGiB = Double.nan

        /// Each time the better of this round's and the best so far (NaN: not measured yet).
        mutating func keepBest(_ other: Figures) {
            func best(_ a: Double, _ b: Double) -> Double { a.isNaN ? b : b.isNaN ? a : min(a, b) }
            (text, unet, vae) = (best(text, other.text), best(unet, other.unet), best(vae, other.vae))
            (run, tracedRun) = (best(run, other.run), best(tracedRun, other.tracedRun))
        }
    }

    func run() throws {
        try BLAS.load()
        let chosen = try variants.split(separator: ",").map { try Variant(String($0)) }
        var torch: [String: Any] = [:], ov: [String: Any] = [:]
        var ours = chosen.map { ($0, Figures()) }
        // Times: the best round; everything else (versions, peak memory): the first round's.
        func merge(_ round: [String: Any], into peer: inout [String: Any]) {
            for (key, value) in round {
                if key.hasSuffix("_s"), let a = peer[key] as? Double, let b = value as? Double { peer[key] = min(a, b) }
                else if peer[key] == nil { peer[key] = value }
            }
        }
        let generate = steps > 0 ? ["--generate", "\(steps)"] : []
        var openvino = openvino   // nil once its outputs failed bench_openvino.py's check against PyTorch
        for _ in 0..<max(1, rounds) {
            if let python = openvino {
                let export = openvinoExport ?? URL(fileURLWithPath: model).standardizedFileURL.path + "-openvino"
                do {
                    merge(try runPythonBench(python: python, script: "bench_openvino.py",
                                             arguments: ["--model", model, "--export-dir", export, "--threads", "\(Parallel.workers)",
                                                         "--repeats", "\(repeats)", "--latent", "\(latent)"] + generate), into: &ov)
                } catch {
                    // Its own message (above) says why: a wrong result is no figure, and the other columns still are.
                    FileHandle.standardError.write(Data("warning: the OpenVINO column is left out: \(error)\n".utf8))
                    (openvino, ov) = (nil, [:])
                }
            }
            if let python {
                merge(try runTorch(python: python, model: model, repeats: repeats, latent: latent, extra: generate), into: &torch)
            }
            for i in ours.indices { ours[i].1.keepBest(try measureModels(ours[i].0)) }
        }
        for i in ours.indices { ours[i].1.peakGiB = try childPeakGiB(ours[i].0) }

        let withOV = openvino != nil
        var columns = [""] + (withOV ? ["OpenVINO f32"] : []) + ["PyTorch fp32"]
        for (p, _) in ours { columns += ["Pareidolia \(p)"] + (withOV ? ["/ OpenVINO"] : []) + ["/ PyTorch"] }
        var table = Table(columns: columns)
        func row(_ name: String, _ key: String?, _ value: (Figures) -> Double, digits: Int, unit: String, scale: Double = 1) {
            let (theirs, ovs) = (key.flatMap { torch[$0] as? Double }.map { $0 / scale }, key.flatMap { ov[$0] as? Double }.map { $0 / scale })
            func cell(_ v: Double?) -> String { v.map { $0.isNaN ? "–" : fmt($0, digits) + unit } ?? "–" }
            func ratio(_ v: Double, _ peer: Double?) -> String { peer.map { v / $0 }.map { $0.isNaN ? "–" : fmt($0, 2) } ?? "–" }
            var cells = [name] + (withOV ? [cell(ovs)] : []) + [cell(theirs)]
            for (_, f) in ours {
                let v = value(f)
                cells += [cell(v)] + (withOV ? [ratio(v, ovs)] : []) + [ratio(v, theirs)]
            }
            table.add(cells)
        }
        let side = latent * 8
        row("text encoder, 2×77 tokens", "text_encoder_s", { $0.text }, digits: 3, unit: " s")
        row("UNet evaluation, batch 2, \(latent)×\(latent)", "unet_s", { $0.unet }, digits: 2, unit: " s")
        row("VAE decode to \(side)×\(side)", "vae_decode_s", { $0.vae }, digits: 2, unit: " s")
        if steps > 0 {
            row("txt2img \(side)², \(steps) steps euler_a", "generate_s", { $0.run }, digits: 1, unit: " s")
            row("  same, default trace", "generate_s", { $0.tracedRun }, digits: 1, unit: " s")
            row("  trace / no trace", nil, { $0.tracedRun / $0.run }, digits: 3, unit: "")
        }
        row("peak RSS, txt2img \(side)²", "peak_rss_bytes", { $0.peakGiB }, digits: 2, unit: " GiB", scale: 1_073_741_824)
        print("OpenBLAS \(BLAS.coreName), \(Parallel.workers) threads, kernels at \(KernelISA.current); "
              + "PyTorch \(torch["torch"] as? String ?? "not measured") (\(torch["cpu_capability"] as? String ?? "–"))"
              + (withOV ? "; OpenVINO \(ov["openvino"] as? String ?? "–") (f32 inference precision, static shapes)" : "")
              + "; ratios = Pareidolia / peer (< 1: faster or smaller)")
        print(table.render())
        print("The peers' peak RSS is their benchmark process's (models loaded once, every call above); ours is a child "
              + "process running a \(side)² txt2img (2 steps).")
    }

    /// Text encoder, UNet and VAE timings (and whole runs) of one variant.
    func measureModels(_ variant: Variant) throws -> Figures {
        let sd = try StableDiffusionModel.load(model, vaeEncoder: false, precision: variant.precision, fast: variant.fast)
        var f = Figures()
        let ids = [sd.tokenizer.encode(Self.prompt), sd.tokenizer.encode("")]
        f.text = try bestSeconds(repeats: repeats) { _ = try sd.textEncoder.encode(ids) }
        let context = try sd.textEncoder.encode(ids)  // [2, 77, 768]
        let sample = Tensor.random([2, 4, latent, latent], seed: 11)
        f.unet = try bestSeconds(repeats: repeats) { _ = try sd.unet(sample, timesteps: [981], context: context) }
        let z = Tensor.random([1, 4, latent, latent], seed: 12)
        f.vae = try bestSeconds(repeats: repeats) { _ = try sd.vae.decode(z) }
        if steps > 0 {
            var s = GenerationSettings(prompt: Self.prompt)
            s.seed = 1887838105
            s.steps = steps
            s.sampler = .euler_a
            s.width = latent * 8
            s.height = latent * 8
            let pipeline = TextToImagePipeline(model: sd)
            func wall(_ observer: GenerationObserver?) throws -> Double {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try pipeline.generate(s, observer: observer)
                return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            }
            f.run = try wall(nil)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-report-trace-\(getpid())")
            defer { try? FileManager.default.removeItem(at: dir) }
            f.tracedRun = try wall(try TraceRecorder(directory: dir.path, unet: sd.unet, engineVersion: Version.engine))
        }
        return f
    }

    /// Peak RSS of a fresh process generating at this size (2 steps): this binary's `generate --memory`.
    func childPeakGiB(_ variant: Variant) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        p.arguments = ["generate", "--model", model, "--steps", "2", "--size", "\(latent * 8)", "--precision", variant.precision.rawValue,
                       "--fast", variant.fast.description, "--memory"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0, let r = text.range(of: "peak "),
              let gib = Double(text[r.upperBound...].prefix { $0.isNumber || $0 == "." })
        else { throw ValidationError("generate --memory failed: \(text)") }
        return gib
    }
}
