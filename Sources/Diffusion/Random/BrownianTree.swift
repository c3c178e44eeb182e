import Foundation
import Tensors

/// torchsde's `BrownianTree` (a `BrownianInterval` with `halfway_tree=True`, `tol=1e-6`, pool size 24,
/// no Lévy area) as k-diffusion builds one per image for A1111's SDE samplers, with A1111's
/// `randn_local` in place of torchsde's own draws: each node's noise from a fresh generator of the
/// image's RNG source seeded with the node's seed.
///
/// The construction (torchsde/_brownian/brownian_interval.py): times are doubles rounded to 6
/// decimals (`round(x, 6)`). The whole interval [t0, t1] gets W = randn(seed₀)·√(t1 − t0), seed₀ the
/// first word of `SeedSequence(entropy: seed, pool 24).generate_state(3)`. A node is split at its
/// rounded midpoint, never elsewhere, so the tree is the same whatever is asked of it; splitting
/// node (key k, depth d) draws its seeds from `SeedSequence(seed, spawn_key: (k, d))`, its children
/// have keys 2k and 2k + 1 at depth d + 1 (the root: key 0, depth 0). A child's W comes from its
/// parent's: left = (l·W)/h + √(l·r/h)·randn(parent's W seed), right = W − left, where l and r are the
/// children's widths and h the parent's (float32 tensor arithmetic, each double scalar rounded to
/// float32 as torch does). A query [ta, tb] (clamped to [t0, t1]) splits nodes until both ends are
/// node boundaries and sums, left to right, the W of the nodes that tile it.
public final class BrownianTree {
    struct Node {
        var start: Double, end: Double
        var parent: Int?
        var isLeft: Bool
        var key: [UInt32]  // the spawn key, little-endian words
        var depth: Int
        var midway: Double?
        var wSeed: UInt32 = 0
        var left = 0, right = 0
    }

    let entropy: [UInt32]
    let rng: RNGKind
    /// One image's noise shape ([4, h, w]).
    let shape: [Int]
    var nodes: [Node]
    /// Increments of recently used nodes (each a function of the seed alone; kept to save redrawing a path).
    private var cache: [Int: [Float]] = [:]
    private var cacheOrder: [Int] = []
    static let cacheSize = 64
    static let poolSize = 24

    public init(t0: Double, t1: Double, seed: UInt64, rng: RNGKind, shape: [Int]) {
        entropy = SeedSequence.words(of: seed)
        self.rng = rng
        self.shape = shape
        nodes = [Node(start: Self.round6(t0), end: Self.round6(t1), parent: nil, isLeft: false, key: [0], depth: 0)]
        let seeds = SeedSequence(entropy: entropy, poolSize: Self.poolSize).generateState(3)
        // The top increment scales by the unrounded width, as torchsde does.
        let s = Float((t1 - t0).squareRoot())
        remember(0, draw(seeds[0]).map { $0 * s })
    }

    /// `round(x, 6)`: correctly rounded to 6 decimals (ties to even on the exact binary value, as
    /// Python's float rounding and glibc's printf both do), read back as the nearest double.
    static func round6(_ x: Double) -> Double {
        var buf = [CChar](repeating: 0, count: 64)
        let n = withVaList([x]) { vsnprintf(&buf, buf.count, "%.6f", $0) }
        guard n > 0, n < buf.count else { return x }  // not finite or beyond 10⁵⁰: torchsde's times never are
        return strtod(buf, nil)
    }

    /// W(ta, tb) for ta ≤ tb, the tree's increment (one image's shape, flattened). Throws for two
    /// times that round to the same 6-decimal point (torchsde recurses without end there).
    public func increment(_ ta: Float, _ tb: Float) throws -> [Float] {
        var a = Double(ta), b = Double(tb)
        let (start, end) = (nodes[0].start, nodes[0].end)
        a = min(max(a, start), end)  // torchsde clamps (with a warning)
        b = min(max(b, start), end)
        if a == b { return [Float](repeating: 0, count: noiseElementCount(shape)) }
        (a, b) = (Self.round6(a), Self.round6(b))
        guard a < b else {
            throw SamplerError("the Brownian tree cannot resolve σ \(ta) to \(tb): they round to the same 6-decimal time")
        }
        var tiles: [Int] = []
        collect(0, a, b, &tiles)
        var w = try wOf(tiles[0])
        for t in tiles.dropFirst() {
            let wi = try wOf(t)
            for j in w.indices { w[j] += wi[j] }
        }
        return w
    }

    /// The nodes tiling [a, b] within node n, left to right (splitting where needed).
    private func collect(_ n: Int, _ a: Double, _ b: Double, _ out: inout [Int]) {
        if a == nodes[n].start && b == nodes[n].end { out.append(n); return }
        let mid = split(n)
        if b <= mid {
            collect(nodes[n].left, a, b, &out)
        } else if a >= mid {
            collect(nodes[n].right, a, b, &out)
        } else {
            collect(nodes[n].left, a, mid, &out)
            collect(nodes[n].right, mid, b, &out)
        }
    }

    /// Node n's midpoint, splitting it at its rounded half first if it has no children.
    private func split(_ n: Int) -> Double {
        if let m = nodes[n].midway { return m }
        let node = nodes[n]
        let mid = Self.round6(0.5 * (node.end + node.start))
        let seeds = SeedSequence(entropy: entropy, spawnKey: [node.key, SeedSequence.words(of: UInt64(node.depth))],
                                 poolSize: Self.poolSize).generateState(4)
        let l = nodes.count
        nodes.append(Node(start: node.start, end: mid, parent: n, isLeft: true, key: Self.child(node.key, 0), depth: node.depth + 1))
        nodes.append(Node(start: mid, end: node.end, parent: n, isLeft: false, key: Self.child(node.key, 1), depth: node.depth + 1))
        nodes[n].midway = mid
        nodes[n].wSeed = seeds[0]
        nodes[n].left = l
        nodes[n].right = l + 1
        return mid
    }

    /// 2·key + bit on little-endian words (numpy's integer → words: no leading zero words).
    static func child(_ key: [UInt32], _ bit: UInt32) -> [UInt32] {
        var out: [UInt32] = [], carry = bit
        for w in key {
            out.append((w << 1) | carry)
            carry = w >> 31
        }
        if carry != 0 { out.append(carry) }
        return out
    }

    /// Node n's increment: from the nearest remembered ancestor down, each child from its parent.
    private func wOf(_ n: Int) throws -> [Float] {
        var path: [Int] = []
        var m = n
        while cache[m] == nil {
            path.append(m)
            guard let p = nodes[m].parent else { throw SamplerError("the Brownian tree lost its top increment") }
            m = p
        }
        var w = cache[m]!
        for c in path.reversed() {
            let p = nodes[nodes[c].parent!]
            let mid = p.midway!
            let leftDiff = mid - p.start, rightDiff = p.end - mid, hReciprocal = 1 / (p.end - p.start)
            // torch: mean = left_diff * W * h_reciprocal, left = mean + sqrt(var) * noise, right = W − left,
            // each scalar a double made float32.
            let fl = Float(leftDiff), fh = Float(hReciprocal), sd = Float((leftDiff * rightDiff * hReciprocal).squareRoot())
            let noise = draw(p.wSeed)
            var next = [Float](repeating: 0, count: w.count)
            for j in w.indices {
                let left = (fl * w[j]) * fh + sd * noise[j]
                next[j] = nodes[c].isLeft ? left : w[j] - left
            }
            w = next
            remember(c, w)
        }
        return w
    }

    private func draw(_ seed: UInt32) -> [Float] {
        var g = rng.makeGenerator(seed: UInt64(seed))
        let t = g.randn(shape)  // [4, h, w]
        return Array(UnsafeBufferPointer(start: t.pointer, count: t.count))
    }

    private func remember(_ n: Int, _ w: [Float]) {
        if cache[n] == nil { cacheOrder.append(n) }
        cache[n] = w
        // The top increment stays (everything descends from it); the oldest other one goes.
        if cacheOrder.count > Self.cacheSize, let i = cacheOrder.firstIndex(where: { $0 != 0 }) {
            cache[cacheOrder.remove(at: i)] = nil
        }
    }
}

/// k-diffusion's `BrownianTreeNoiseSampler` as A1111 creates it (`create_noise_sampler`): one tree
/// per image seed over [σ_min, σ_max] of the sigma list (σ_min the smallest above 0); a draw for a
/// step from σ to σ' is W(σ, σ')/√|σ' − σ|, W negated when σ > σ'.
public struct BrownianTreeNoiseSampler {
    let tree: BrownianTree
    let sign: Float
    /// One image's latent shape [1, 4, h, w].
    let shape: [Int]

    public init(sigmas: [Float], seed: UInt64, rng: RNGKind, shape: [Int]) {
        let positive = sigmas.filter { $0 > 0 }
        let lo = positive.min() ?? 0, hi = sigmas.max() ?? 0
        // k-diffusion sorts the ends (equal ends count as reversed).
        let (t0, t1, sign): (Float, Float, Float) = lo < hi ? (lo, hi, 1) : (hi, lo, -1)
        tree = BrownianTree(t0: Double(t0), t1: Double(t1), seed: seed, rng: rng, shape: Array(shape.dropFirst()))
        self.sign = sign
        self.shape = shape
    }

    /// Unit-variance noise for the step from `sigma` to `next`, [1, 4, h, w].
    public func callAsFunction(_ sigma: Float, _ next: Float) throws -> Tensor {
        let (a, b, s): (Float, Float, Float) = sigma < next ? (sigma, next, 1) : (next, sigma, -1)
        let w = try tree.increment(a, b)
        let sign = self.sign * s
        let denominator = abs(next - sigma).squareRoot()
        let out = Tensor(uninitializedShape: shape)  // [1, 4, h, w]
        for j in w.indices { out.pointer[j] = (w[j] * sign) / denominator }
        return out
    }
}
