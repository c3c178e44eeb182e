import Diffusion
import Foundation
import Tensors

/// A one-line progress bar on stderr (evaluation i/N, s/it, ETA), drawn only when stderr is a
/// terminal; piped or redirected output stays quiet.
final class ProgressBar: GenerationObserver {
    var label: String
    let enabled = isatty(STDERR_FILENO) == 1
    var total = 0
    var times: [Double] = []

    init(label: String) { self.label = label }

    func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
        total = evaluations
        times = []
        draw()
    }

    func didEvaluate(_ record: EvaluationRecord) {
        times.append(record.seconds)
        draw()
    }

    /// Work other than generation (decodes): item `done` of `total` finished now.
    private var lastTick = Date()
    func tick(label: String, done: Int, total: Int) {
        if label != self.label || total != self.total || done <= 1 { finish(); times = []; lastTick = Date() }
        self.label = label
        self.total = total
        let now = Date()
        times.append(now.timeIntervalSince(lastTick))
        lastTick = now
        draw()
        if done == total { finish(); times = []; self.total = 0 }
    }

    func draw() {
        guard enabled, total > 0 else { return }
        let done = times.count, width = 30
        let filled = width * done / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        var line = "\(label) \(bar) \(done)/\(total)"
        if let last = times.last {
            // The median of recent evaluations is steadier than the last one.
            let recent = times.suffix(5).sorted()
            let perIt = times.count >= 3 ? recent[recent.count / 2] : last
            line += String(format: "  %.2f s/it  ETA %@", perIt, Self.clock(perIt * Double(total - done)))
        }
        FileHandle.standardError.write(("\r\u{1B}[2K" + line).data(using: .utf8)!)
    }

    func finish() {
        guard enabled, total > 0 else { return }
        let spent = times.reduce(0, +)
        FileHandle.standardError.write(String(format: "\r\u{1B}[2K%@ %d/%d in %@\n", label, times.count, total, Self.clock(spent)).data(using: .utf8)!)
    }

    static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 60 ? String(format: "%d:%02d", t / 60, t % 60) : "\(t) s"
    }
}
