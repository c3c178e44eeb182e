import ArgumentParser
import Diffusion
import Foundation
import Models
import Probes
import Tensors

/// A whole txt2img run, plain and with the default trace, in one process: s/it, the trace's
/// overhead and its size on disk.
struct GenerateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "txt2img wall time with and without the default trace (latents, x0, aggregate attention, previews).")

    @Option(help: "An SD 1.x model (diffusers folder or single file).")
    var model: String

    @Option(help: "Sampler steps.")
    var steps = 4

    @Option(help: "Sampler.")
    var sampler = "euler_a"

    @Option(help: "Image side.")
    var size = 512

    @Option(help: "Weights held in fp32, fp16 or bf16.")
    var precision = "fp32"

    @Option(help: "Kernels: winograd (the default), none (the plain path), bf16 or all (fast modes).")
    var fast = FastMath.default.description

    @Flag(help: "Only one untraced run, reporting resident memory after loading, during sampling and at the peak.")
    var memory = false

    func run() throws {
        try BLAS.load()
        guard let precision = Precision(rawValue: precision) else { throw ValidationError("--precision: fp32, fp16 or bf16") }
        let sd = try StableDiffusionModel.load(model, vaeEncoder: false, precision: precision, fast: try FastMath(parsing: fast))
        let loadedRSS = residentBytes()
        var s = GenerationSettings(prompt: "a burning cyborg skiing down a blue wireframe mountain at top speed, octane render, 8k")
        s.seed = 1887838105
        s.steps = steps
        s.sampler = try SamplerKind(parsing: sampler)
        s.width = size
        s.height = size
        let pipeline = TextToImagePipeline(model: sd)

        final class Timer: GenerationObserver {
            var seconds: [Double] = []
            var sampling = 0  // largest resident set seen after an evaluation
            func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {}
            func didEvaluate(_ record: EvaluationRecord) {
                seconds.append(record.seconds)
                sampling = max(sampling, residentBytes())
            }
        }
        func timed(_ observer: GenerationObserver) throws -> Double {  // wall seconds
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try pipeline.generate(s, observer: observer)
            return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        }
        let plainTimer = Timer()
        let plain = try timed(plainTimer)
        if memory {
            let gib = { (b: Int) in fmt(Double(b) / 1_073_741_824, 2) + " GiB" }
            print("\(precision) weights, fast: \(sd.fast) (\(sd.summary)): resident after load \(gib(loadedRSS)), after the last UNet evaluation \(gib(plainTimer.sampling)), peak \(gib(peakRSSBytes())); \(fmt(plain, 1)) s")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-bench-trace-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let recorder = try TraceRecorder(directory: dir.path, unet: sd.unet, engineVersion: Version.engine)
        let tracedTimer = Timer()
        let traced = try timed(Observers([recorder, tracedTimer]))
        let bytes = (FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? []).reduce(0) { total, f in
            total + ((try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(f).path)[.size] as? Int) ?? 0)
        }
        let e = plainTimer.seconds.count
        var table = Table(columns: ["", "no trace", "default trace", "ratio"])
        let pe = plainTimer.seconds.reduce(0, +) / Double(e), te = tracedTimer.seconds.reduce(0, +) / Double(e)
        table.add(["s/it (UNet evaluation, CFG)", fmt(pe, 2), fmt(te, 2), fmt(te / pe, 3)])
        table.add(["whole run (s)", fmt(plain, 1), fmt(traced, 1), fmt(traced / plain, 3)])
        print("\(s.width)×\(s.height), \(sampler), \(steps) steps = \(e) evaluations; OpenBLAS \(BLAS.coreName)")
        print(table.render())
        print("trace size: \(fmt(Double(bytes) / 1e6, 1)) MB for \(e) evaluations (\(fmt(Double(bytes) / 1e6 / Double(e), 2)) MB per evaluation)")
    }
}

