import Foundation
import Tensors

/// Where two runs (two prompts, the same seed, say) part: at every evaluation the distance between
/// their x̂₀ in latent space and between the pictures made of them, and two evaluations that sum
/// it up (numbered from 0 here, from 1 in the sentence):
///
/// - k, where the runs part: the first evaluation at which the latent x̂₀ differ by more than
///   τ = `partThreshold` of their size — the RMS of their difference over the RMS of the two;
/// - m, when the layout is settled: the first evaluation, not before k, from which neither run's
///   picture moves further from its own last picture than f = `settleFraction` of the distance
///   between the two runs' last pictures (or one grey level, when that is larger): after m, what
///   still changes in either run is small beside what tells them apart. Without pictures, the same
///   on the latent x̂₀.
public struct RunDivergence: Sendable {
    public static let partThreshold = 0.10
    public static let settleFraction = 0.50

    /// Per evaluation: ‖a − b‖ / √((‖a‖² + ‖b‖²) / 2); 0 for equal x̂₀, about √2 for unrelated ones.
    public let latent: [Double]
    /// Per evaluation: the RMS difference of the two pictures' 8-bit values, over 255 (0…1); empty
    /// without pictures.
    public let pictures: [Double]
    /// Per evaluation: how far each run still is from its own last picture (pictures' measure), or
    /// its own last x̂₀ (latent measure, without pictures) — what m is read from.
    public let remainingA: [Double], remainingB: [Double]
    /// k and m; nil when the runs never part.
    public let partsAt: Int?, settledBy: Int?

    public var evaluations: Int { latent.count }
    /// The level under which both runs' remaining change must stay from m on.
    public var settleLevel: Double { Self.settleLevel(latent: latent, pictures: pictures) }

    static func settleLevel(latent: [Double], pictures: [Double]) -> Double {
        guard !pictures.isEmpty else { return settleFraction * (latent.last ?? 0) }
        return max(settleFraction * (pictures.last ?? 0), 1 / 255)
    }

    /// `a`, `b`: x̂₀ [E, 4, h, w] of the two runs; `picturesA`, `picturesB`: their evaluations as
    /// pictures of one size (RGB bytes), or none. The evaluations both runs (and pictures) hold are compared.
    public init(x0 a: Tensor, _ b: Tensor, picturesA: [[UInt8]] = [], picturesB: [[UInt8]] = []) throws {
        guard a.rank == 4, b.rank == 4, Array(a.shape.dropFirst()) == Array(b.shape.dropFirst()) else {
            throw TensorError("x̂₀ \(a.shape) and \(b.shape): expected [E, 4, h, w] of one latent size")
        }
        let n = a.count / max(1, a.shape[0])
        var count = min(a.shape[0], b.shape[0])
        if !picturesA.isEmpty || !picturesB.isEmpty { count = min(count, picturesA.count, picturesB.count) }
        func plane(_ t: Tensor, _ e: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: t.pointer + e * n, count: n) }
        let latent = (0..<count).map { Self.relativeDistance(plane(a, $0), plane(b, $0)) }
        guard !picturesA.isEmpty, count > 0 else {
            self.init(latent: latent, remainingA: (0..<count).map { Self.relativeDistance(plane(a, $0), plane(a, count - 1)) },
                      remainingB: (0..<count).map { Self.relativeDistance(plane(b, $0), plane(b, count - 1)) })
            return
        }
        for e in 0..<count where picturesA[e].count != picturesB[e].count || picturesA[e].count != picturesA[0].count {
            throw TensorError("pictures at evaluation \(e + 1) differ in size")
        }
        self.init(latent: latent, pictures: (0..<count).map { Self.pictureDistance(picturesA[$0], picturesB[$0]) },
                  remainingA: (0..<count).map { Self.pictureDistance(picturesA[$0], picturesA[count - 1]) },
                  remainingB: (0..<count).map { Self.pictureDistance(picturesB[$0], picturesB[count - 1]) })
    }

    /// From distances already measured: `remainingA`/`remainingB` in the pictures' measure when
    /// `pictures` is given (as many as `latent`), else in the latent one.
    public init(latent: [Double], pictures: [Double] = [], remainingA: [Double], remainingB: [Double]) {
        self.latent = latent
        self.pictures = pictures.count == latent.count ? pictures : []
        (self.remainingA, self.remainingB) = (remainingA, remainingB)
        let k = latent.firstIndex { $0 > Self.partThreshold }
        partsAt = k
        guard let k, remainingA.count == latent.count, remainingB.count == latent.count else { settledBy = nil; return }
        // The last evaluation is always settled (nothing remains); walk back while the earlier ones are too.
        let level = Self.settleLevel(latent: latent, pictures: self.pictures)
        var m = latent.count - 1
        while m - 1 >= k, max(remainingA[m - 1], remainingB[m - 1]) <= level { m -= 1 }
        settledBy = m
    }

    /// True when a run was still changing more than m allows at the evaluation before the last.
    public var stillChanging: Bool {
        guard let m = settledBy else { return false }
        return m == evaluations - 1 && m > (partsAt ?? 0)
    }

    /// "The runs part from evaluation 3; the layout is settled by evaluation 9 (of 20)."
    public var sentence: String {
        guard let k = partsAt, let m = settledBy else {
            return "The runs never part: their latent x̂₀ stay within \(Self.percent(Self.partThreshold)) of each other at all \(evaluations) evaluations."
        }
        let settled = stillChanging ? "the layout was still changing at the last evaluation (\(m + 1))"
            : "the layout is settled by evaluation \(m + 1)"
        return "The runs part from evaluation \(k + 1); \(settled) (of \(evaluations))."
    }

    /// What k and m are, in words, for the page that shows them; `pictures` names what the
    /// pictures are ("the decoded x̂₀", "the cheap latent maps of x̂₀").
    public static func definitions(pictures: String = "the decoded x̂₀") -> String {
        "k, where the runs part: the first evaluation at which their latent x̂₀ differ by more than τ = \(String(format: "%.2f", partThreshold)) of their size "
            + "(the RMS of the difference over the RMS of the two x̂₀). m, when the layout is settled: the first evaluation, not before k, "
            + "from which neither run's picture (\(pictures)) is further from its own last picture than \(percent(settleFraction)) of the distance between the two runs' last pictures "
            + "(RMS of the 8-bit difference over 255, at least one grey level): after m, what still changes in either run is small beside what tells them apart."
    }

    public static func percent(_ v: Double) -> String { "\(Int((v * 100).rounded()))%" }

    /// ‖a − b‖ / √((‖a‖² + ‖b‖²) / 2), in Double; 0 when both are zero.
    public static func relativeDistance(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        var diff = 0.0, sa = 0.0, sb = 0.0
        for i in 0..<min(a.count, b.count) {
            let (x, y) = (Double(a[i]), Double(b[i]))
            diff += (x - y) * (x - y); sa += x * x; sb += y * y
        }
        let size = ((sa + sb) / 2).squareRoot()
        return size > 0 ? diff.squareRoot() / size : 0
    }

    /// RMS of the byte-wise difference over 255.
    public static func pictureDistance(_ a: [UInt8], _ b: [UInt8]) -> Double {
        guard !a.isEmpty, a.count == b.count else { return 0 }
        var s = 0.0
        for i in a.indices { let d = Double(a[i]) - Double(b[i]); s += d * d }
        return (s / Double(a.count)).squareRoot() / 255
    }
}
