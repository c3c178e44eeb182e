import Diffusion
import Foundation
import Imaging
import Models
import Probes
import Tensors
import Workbench

/// What the page asks for: one prompt, one seed. Absent fields take the CLI's defaults.
public struct RunRequest: Codable, Sendable {
    public var prompt: String
    public var negativePrompt: String?
    public var seed: UInt64?
    public var steps: Int?
    public var guidance: Float?
    public var sampler: String?
    public var schedule: String?
    public var width: Int?
    public var height: Int?
    /// A fork: the run this one repeats with an edited prompt (its id).
    public var parent: String?
    /// The merge remedy: keep these subjects (words or triggers) apart, a column each, left to
    /// right (docs/REMEDY.md).
    public var separate: [String]?
    /// Textual-inversion embeddings, by trigger, among those the server offers.
    public var embeddings: [String]?

    enum CodingKeys: String, CodingKey {
        case prompt, seed, steps, guidance, sampler, schedule, width, height, parent, separate, embeddings
        case negativePrompt = "negative_prompt"
    }

    public init(prompt: String) { self.prompt = prompt }
}

/// One engine, runs in order. The engine is synchronous and CPU-bound, so it runs on a thread of
/// its own (never on the server's event loops); each run is a `Workbench.GenerationRun` writing an
/// ordinary trace folder, and streams its steps and x̂₀ previews through the hub. Cancelling
/// stops a run at its next evaluation (the partial trace stays valid) or drops it from the queue.
public final class RunQueue: @unchecked Sendable {
    public enum Status: String, Sendable { case queued, running, done, failed, cancelled }

    final class Job {
        let id: String
        let number: Int
        let settings: GenerationSettings
        let parent: String?
        /// (trigger, file) of each embedding the run uses.
        let embeddings: [(trigger: String, file: String)]
        var status = Status.queued
        var cancelRequested = false
        var message: String?
        init(id: String, number: Int, settings: GenerationSettings, parent: String?, embeddings: [(trigger: String, file: String)]) {
            (self.id, self.number, self.settings, self.parent, self.embeddings) = (id, number, settings, parent, embeddings)
        }
    }

    public struct Refusal: Error, CustomStringConvertible { public let description: String }

    let configuration: ServerConfiguration
    let folders: RunFolders
    let hub: EventHub
    /// The embeddings a run may ask for: (trigger, file), in the order given.
    let embeddings: [(trigger: String, file: String)]
    private let model: StableDiffusionModel
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var current: Job?
    private var recent: [String: Job] = [:]
    private var numbers = 0
    private var stopping = false
    private var worker: Thread?

    init(model: StableDiffusionModel, configuration: ServerConfiguration, folders: RunFolders, hub: EventHub,
         embeddings: [(trigger: String, file: String)] = []) {
        (self.model, self.configuration, self.folders, self.hub, self.embeddings) = (model, configuration, folders, hub, embeddings)
    }

    /// The request's embeddings: triggers the server offers, each once.
    func embeddings(for r: RunRequest) throws -> [(trigger: String, file: String)] {
        let asked = r.embeddings ?? []
        guard Set(asked).count == asked.count else { throw Refusal(description: "embeddings: each at most once") }
        return try asked.map { trigger in
            guard let e = embeddings.first(where: { $0.trigger == trigger }) else {
                let known = embeddings.map(\.trigger)
                throw Refusal(description: "embeddings: \(trigger.prefix(100)) is not one this server offers (\(known.isEmpty ? "none; serve --embedding FILE" : known.joined(separator: ", ")))")
            }
            return e
        }
    }

    func start() {
        let t = Thread { [weak self] in self?.workLoop() }
        t.name = "pareidolia-engine"
        t.stackSize = 16 << 20
        worker = t
        t.start()
    }

    func stop() {
        condition.lock()
        stopping = true
        current?.cancelRequested = true
        condition.broadcast()
        condition.unlock()
    }

    /// The request as settings, checked against the server's bounds (one line naming the field).
    func settings(for r: RunRequest) throws -> GenerationSettings {
        func bad(_ s: String) -> Refusal { Refusal(description: s) }
        let prompt = r.prompt.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !prompt.isEmpty else { throw bad("prompt: empty") }
        guard prompt.count <= configuration.maxPromptCharacters, (r.negativePrompt?.count ?? 0) <= configuration.maxPromptCharacters else {
            throw bad("prompt: at most \(configuration.maxPromptCharacters) characters")
        }
        var s = GenerationSettings(prompt: prompt)
        s.negativePrompt = r.negativePrompt ?? ""
        s.seed = r.seed ?? UInt64(UInt32.random(in: 0...UInt32.max))
        s.steps = r.steps ?? configuration.defaults.steps
        guard (1...configuration.maxSteps).contains(s.steps) else { throw bad("steps \(s.steps): expected 1…\(configuration.maxSteps)") }
        s.guidance = r.guidance ?? configuration.defaults.guidance
        guard s.guidance.isFinite, (0...50).contains(s.guidance) else { throw bad("guidance \(s.guidance): expected 0…50") }
        let side = model.unet.config.sampleSize * 8
        (s.width, s.height) = (r.width ?? side, r.height ?? side)
        for (name, v) in [("width", s.width), ("height", s.height)] {
            guard v % 8 == 0, (8...configuration.maxSide).contains(v) else { throw bad("\(name) \(v): expected a multiple of 8 up to \(configuration.maxSide)") }
        }
        do { s.samplerChoice = try SamplerChoice.parse(r.sampler ?? configuration.defaults.sampler, schedule: r.schedule) } catch {
            throw bad("sampler \(r.sampler ?? ""): \(error)")
        }
        if let subjects = r.separate {
            guard (2...4).contains(subjects.count), subjects.allSatisfy({ !$0.isEmpty && $0.count <= 100 }) else {
                throw bad("separate: two to four words of the prompt")
            }
            let separation = Separation(subjects: subjects, boxes: Separation.columns(subjects.count))
            do { try separation.validate() } catch { throw bad("separate: \(error)") }
            s.separation = separation
        }
        do { try s.validate() } catch { throw bad("\(error)") }
        if let parent = r.parent, !RunFolders.isValidID(parent) { throw bad("parent \(parent): not a run id") }
        return s
    }

    /// Queues a run; its id and place in the queue (0: next).
    func submit(_ r: RunRequest) throws -> (id: String, position: Int) {
        let s = try settings(for: r)
        let chosen = try embeddings(for: r)
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw Refusal(description: "the server is stopping") }
        guard pending.count < configuration.maxQueuedRuns else { throw Refusal(description: "the queue is full (\(configuration.maxQueuedRuns) runs)") }
        numbers += 1
        var id = folders.makeID()
        while pending.contains(where: { $0.id == id }) || current?.id == id || recent[id] != nil {
            id = folders.makeID(now: Date().addingTimeInterval(1))
        }
        let job = Job(id: id, number: numbers, settings: s, parent: r.parent, embeddings: chosen)
        pending.append(job)
        try? writeRecord(job)
        publishQueueLocked()
        condition.signal()
        return (id, pending.count - 1)
    }

    /// Cancels a queued run or stops the running one at its next evaluation.
    func cancel(_ id: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if let i = pending.firstIndex(where: { $0.id == id }) {
            let job = pending.remove(at: i)
            job.status = .cancelled
            recent[id] = job
            try? writeRecord(job)
            hub.publish(.json(["type": "done", "id": id, "status": "cancelled"]))
            publishQueueLocked()
            return true
        }
        if let current, current.id == id { current.cancelRequested = true; return true }
        return false
    }

    /// The queue as the page shows it.
    func state() -> [String: Any] {
        condition.lock()
        defer { condition.unlock() }
        var out = stateLocked()
        out["embeddings"] = embeddings.map(\.trigger)
        let d = configuration.defaults
        out["defaults"] = ["sampler": d.sampler, "steps": d.steps, "guidance": Double(d.guidance)] as [String: Any]
        return out
    }

    func status(of id: String) -> Status? {
        condition.lock()
        defer { condition.unlock() }
        if current?.id == id { return current?.status }
        return pending.first { $0.id == id }?.status ?? recent[id]?.status
    }

    private func stateLocked() -> [String: Any] {
        var out: [String: Any] = ["type": "queue", "pending": pending.map { ["id": $0.id, "number": $0.number, "prompt": $0.settings.prompt] }]
        if let current { out["running"] = ["id": current.id, "number": current.number, "prompt": current.settings.prompt] }
        return out
    }

    private func publishQueueLocked() { hub.publish(.json(stateLocked()), replayKey: "queue") }

    // MARK: - the engine thread

    private func workLoop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopping { condition.wait() }
            if stopping { condition.unlock(); return }
            let job = pending.removeFirst()
            job.status = .running
            current = job
            publishQueueLocked()
            condition.unlock()

            execute(job)

            condition.lock()
            current = nil
            recent[job.id] = job
            if recent.count > 500, let oldest = recent.keys.min() { recent[oldest] = nil }
            try? writeRecord(job)
            publishQueueLocked()
            condition.unlock()
            var done: [String: Any] = ["type": "done", "id": job.id, "status": job.status.rawValue]
            if let m = job.message { done["message"] = m }
            hub.clearReplay(["step", "frame"])
            hub.publish(.json(done))
        }
    }

    private func execute(_ job: Job) {
        let folder = folders.folder(job.id)
        var request = GenerationRun.Request(prompts: [job.settings.prompt], seeds: [job.settings.seed], settings: job.settings,
                                            output: folder.appendingPathComponent("image.png").path, modelPath: configuration.modelPath)
        request.trace = folder.appendingPathComponent("trace").path
        request.embeddingFiles = job.embeddings.map(\.file)
        let observer = StreamingObserver(id: job.id, number: job.number, hub: hub, vae: model.vae)
        do {
            let run = try GenerationRun(model: model, request: request)
            hub.publish(.json(["type": "start", "id": job.id, "number": job.number, "prompt": job.settings.prompt, "seed": job.settings.seed]))
            try run.run(observers: { _ in [observer] }, shouldStop: { [weak self] in self?.cancelRequested(job) ?? true })
            job.status = .done
        } catch {
            let interrupted = (error as? GenerationRun.Failure)?.interrupted ?? false
            job.status = interrupted || cancelRequested(job) ? .cancelled : .failed
            job.message = "\(error)"
        }
    }

    private func cancelRequested(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return job.cancelRequested
    }

    /// `request.json`: what was asked, its status, the parent of a fork. Written atomically.
    private func writeRecord(_ job: Job) throws {
        let folder = folders.folder(job.id)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let s = job.settings
        var record: [String: Any] = [
            "prompt": s.prompt, "negative_prompt": s.negativePrompt, "seed": s.seed, "steps": s.steps, "guidance": s.guidance,
            "width": s.width, "height": s.height, "status": job.status.rawValue, "number": job.number,
        ]
        switch s.samplerChoice {
        case let .diffusers(k): record["sampler"] = k.rawValue
        case let .a1111(a): record["sampler"] = a.sampler.rawValue; record["schedule"] = a.schedule.rawValue
        }
        if let p = job.parent { record["parent"] = p }
        if let sep = s.separation { record["separate"] = sep.subjects }
        if !job.embeddings.isEmpty { record["embeddings"] = job.embeddings.map(\.trigger) }
        if let m = job.message { record["message"] = m }
        let data = try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: folder.appendingPathComponent("request.json").path)
    }
}

/// Streams a run: each evaluation's step, s/it and ETA as JSON; x̂₀ as a PNG frame, through A1111's
/// cheap latent → RGB map every step (one pixel per latent pixel; the page scales it) or, for small
/// images, decoded by the VAE as often as that costs at most ~5% of the run (measured: the first
/// decode's time against the steps'). Public for `pareidolia-bench stream`, which measures its cost.
public final class StreamingObserver: GenerationObserver {
    /// The run's id and queue number, as the page knows it.
    let id: String
    let number: Int
    let hub: EventHub
    let vae: AutoencoderKL?
    private var evaluations = 0
    private var started = Date()
    private var decodeSeconds: Double?
    private var lastDecode = -1
    /// The share of the run's time decoded frames may take.
    static let decodeBudget = 0.05

    public init(id: String, number: Int, hub: EventHub, vae: AutoencoderKL?) {
        (self.id, self.number, self.hub, self.vae) = (id, number, hub, vae)
    }

    public func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
        self.evaluations = evaluations
        started = Date()
    }

    public func willEvaluate(index: Int) {}

    public func didEvaluate(_ record: EvaluationRecord) {
        let done = record.index + 1
        let elapsed = Date().timeIntervalSince(started)
        let perStep = elapsed / Double(done)
        hub.publish(.json(["type": "step", "id": id, "number": number, "step": done, "evaluations": evaluations,
                           "timestep": Double(record.timestep), "seconds_per_step": perStep,
                           "eta": perStep * Double(evaluations - done)]), replayKey: "step")
        guard let x0 = record.predictedOriginal else { return }
        if shouldDecode(step: done, secondsPerStep: perStep, latentPixels: x0.shape[x0.rank - 1] * x0.shape[x0.rank - 2]), let vae {
            let t0 = Date()
            if let image = try? vae.decodeUNetLatent(x0), let rgb = try? RGBImage(tensor: image), let png = try? PNGFile.encode(rgb) {
                decodeSeconds = Date().timeIntervalSince(t0)
                lastDecode = done
                hub.publish(.preview(run: number, step: done, png: png), replayKey: "frame")
                return
            }
        }
        if let png = try? PNGFile.encode(LatentPreview.rgb(x0)) {
            hub.publish(.preview(run: number, step: done, png: png), replayKey: "frame")
        }
    }

    /// Small latents only (≤ 32×32, images up to 256²: a 512² decode costs about a UNet step, and
    /// the run decodes its image at the end anyway): the first step, to measure, then every k-th
    /// step, k keeping the decodes within the budget.
    func shouldDecode(step: Int, secondsPerStep: Double, latentPixels: Int) -> Bool {
        guard latentPixels <= 1024 else { return false }
        guard let cost = decodeSeconds else { return step == 1 }
        let every = max(1, Int((cost / (Self.decodeBudget * max(secondsPerStep, 1e-6))).rounded(.up)))
        return step - lastDecode >= every
    }
}
