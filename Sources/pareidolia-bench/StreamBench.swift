import ArgumentParser
import Diffusion
import Foundation
import Models
import Server
import Tensors

/// What `pareidolia serve`'s live stream costs a run: the same txt2img with and without the
/// server's StreamingObserver (each step's JSON and x̂₀ frame published to a connected page, which
/// a task here drains as the socket would), rounds interleaved; and the time spent inside the
/// observer itself, step by step.
struct StreamBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "The live workbench's streaming cost: s/it with and without the step events and x̂₀ frames.")

    @Option(help: "An SD 1.x model (diffusers folder or single file).")
    var model: String

    @Option(help: "Sampler steps per run.")
    var steps = 4

    @Option(help: "Image side.")
    var size = 512

    @Option(help: "Rounds: a plain run then a streamed one, this many times; per-step figures are the means of the best round each.")
    var rounds = 2

    /// Wall time between evaluations: the UNet plus every observer's work after the one before.
    final class StepClock: GenerationObserver {
        var last = DispatchTime.now().uptimeNanoseconds
        var intervals: [Double] = []
        func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
            last = DispatchTime.now().uptimeNanoseconds
        }
        func didEvaluate(_ record: EvaluationRecord) {
            let now = DispatchTime.now().uptimeNanoseconds
            intervals.append(Double(now - last) * 1e-9)
            last = now
        }
    }

    /// Times another observer's work.
    final class Timed: GenerationObserver {
        let inner: GenerationObserver
        var seconds: [Double] = []
        init(_ inner: GenerationObserver) { self.inner = inner }
        func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
            inner.didStart(settings: settings, evaluations: evaluations, timesteps: timesteps, sigmas: sigmas, initialLatent: initialLatent)
        }
        func didEvaluate(_ record: EvaluationRecord) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            inner.didEvaluate(record)
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
    }

    func run() throws {
        try BLAS.load()
        let sd = try StableDiffusionModel.load(model, vaeEncoder: false)
        var s = GenerationSettings(prompt: ReportBench.prompt)
        s.seed = 1887838105
        s.steps = steps
        s.sampler = .euler_a
        (s.width, s.height) = (size, size)
        let pipeline = TextToImagePipeline(model: sd)
        let hub = EventHub()
        // A connected page: drains the hub as the socket's writer would, counting what it gets.
        let (subscriber, stream) = hub.subscribe()
        final class Received: @unchecked Sendable { var frames = 0, bytes = 0 }
        let received = Received()
        let drained = DispatchSemaphore(value: 0)
        Task.detached {
            for await event in stream {
                if case .binary(let b) = event { received.frames += 1; received.bytes += b.count }
            }
            drained.signal()
        }
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(max(1, v.count)) }
        var plain: [Double] = [], streamed: [Double] = [], inside: [Double] = []
        for round in 0..<max(1, rounds) {
            let clock = StepClock()
            _ = try pipeline.generate(s, observer: clock)
            let clock2 = StepClock()
            let streaming = Timed(StreamingObserver(id: "bench", number: round + 1, hub: hub, vae: sd.vae))
            _ = try pipeline.generate(s, observer: Observers([clock2, streaming]))
            if plain.isEmpty || mean(clock.intervals) < mean(plain) { plain = clock.intervals }
            if streamed.isEmpty || mean(clock2.intervals) < mean(streamed) { streamed = clock2.intervals; inside = streaming.seconds }
        }
        hub.unsubscribe(subscriber)
        drained.wait()
        var table = Table(columns: ["", "plain", "streamed", "ratio"])
        table.add(["s/it (wall, between evaluations)", fmt(mean(plain), 3), fmt(mean(streamed), 3), fmt(mean(streamed) / mean(plain), 3)])
        print("\(size)×\(size), euler_a, \(steps) steps, best of \(max(1, rounds)) interleaved rounds; OpenBLAS \(BLAS.coreName), \(Parallel.workers) threads")
        print(table.render())
        print("inside the streaming observer: mean \(fmt(mean(inside) * 1e3, 2)) ms a step, most \(fmt((inside.max() ?? 0) * 1e3, 2)) ms "
              + "(\(fmt(100 * mean(inside) / mean(streamed), 3))% of a step); the page got \(received.frames) frames, "
              + "\(fmt(Double(received.bytes) / Double(max(1, received.frames)) / 1024, 1)) KiB each")
    }
}
