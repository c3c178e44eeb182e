import Foundation
import Tensors

/// Where model weights come from: a checkpoint archive, a folder, or a test dictionary.
public protocol WeightSource {
    /// Every tensor name the source holds.
    var tensorNames: [String] { get }
    /// The stored shape of a tensor, or nil when absent.
    func shape(of name: String) -> [Int]?
    /// The tensor as float32 (converted once if stored in 16 bits).
    func float32(_ name: String) throws -> Tensor
    /// A label for messages (the file or folder).
    var label: String { get }
    /// The tensor in 16 bits: borrowed from the file when stored so, else rounded (ties to even).
    func half(_ name: String, format: HalfFormat) throws -> HalfTensor
}

extension WeightSource {
    public func half(_ name: String, format: HalfFormat) throws -> HalfTensor {
        HalfTensor(rounding: try float32(name), to: format)
    }
}

/// The kernels' departures from the plain float32 path (im2col + sgemm), chosen at load time.
/// `default` (Winograd) is as faithful to diffusers as the plain path over the whole parity suite;
/// bf16 products are a fast mode that is not.
public struct FastMath: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// 3×3 stride-1 convolutions by Winograd F(4×4, 3×3) (float32; fewer multiplies, more rounding).
    public static let winograd = FastMath(rawValue: 1)
    /// Linear and convolution products with bfloat16 operands and float32 sums (AVX512-BF16).
    public static let bf16 = FastMath(rawValue: 2)

    /// What runs unless asked otherwise: Winograd 3×3 convolutions. Over every pipeline parity
    /// case (samplers, both RNGs, negative prompts, embeddings, long prompts, fp16 files) their
    /// results are as close to diffusers as the plain path's; `none` keeps the plain path.
    public static let `default`: FastMath = .winograd

    /// What this CPU can run.
    public static var supported: FastMath { PackedBF16Matrix.isSupported ? [.winograd, .bf16] : [.winograd] }

    /// "winograd", "bf16", "all" (everything this CPU supports), "none" (the plain path) or a
    /// comma-separated list.
    public init(parsing text: String) throws {
        var m: FastMath = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            switch part {
            case "winograd": m.insert(.winograd)
            case "bf16":
                if let reason = PackedBF16Matrix.unsupportedReason {
                    throw WeightLoadError(description: "bf16: \(reason); bf16 arithmetic needs AVX512-BF16 (use winograd)")
                }
                m.insert(.bf16)
            case "all": m.formUnion(Self.supported)
            case "none", "": break
            default: throw WeightLoadError(description: "\(part): expected winograd, bf16, all or none")
            }
        }
        self = m
    }

    public var description: String {
        isEmpty ? "none" : [(FastMath.winograd, "winograd"), (.bf16, "bf16")].filter { contains($0.0) }.map(\.1).joined(separator: ",")
    }
}

/// How a layer's weight is held: for exact float32 arithmetic (in 32 or 16 bits), or in the
/// form a fast-mode kernel takes.
public enum FastKernel: @unchecked Sendable {
    case plain(WeightData)
    case winograd(WinogradWeight)
    case bf16(PackedBF16Matrix)
}

/// A model failed to bind: what was missing, of the wrong shape, or unreadable.
public struct WeightLoadError: Error, CustomStringConvertible {
    public let description: String
}

/// Binds a model's parameters to checkpoint keys and keeps the tally that loading reports:
/// missing keys, wrong shapes, and (at the end) the keys nobody asked for.
///
/// Blocks ask for their weights by key relative to a scope (`scoped("down_blocks.0")`); the binder
/// collects problems instead of stopping at the first, so one load reports them all.
public final class WeightBinder {
    public let source: WeightSource
    private let prefix: String
    private let state: State

    final class State {
        var precision: Precision = .fp32
        var fast: FastMath = []
        /// Mapped files that bound tensors borrow from (to release their resident pages).
        var files: [ObjectIdentifier: PageReleasing] = [:]
        var used = Set<String>()
        var missing: [String] = []
        var wrongShape: [String] = []
        var unreadable: [String] = []
    }

    /// `precision`: how `weight(_:shape:)` holds layer weights and the token embedding (norms, biases
    /// and position embeddings stay float32).
    /// `fast`: the fast-mode kernels layer weights are prepared for (none: exact float32).
    public init(source: WeightSource, prefix: String = "", precision: Precision = .fp32, fast: FastMath = []) {
        self.source = source
        self.prefix = prefix
        self.state = State()
        state.precision = precision
        state.fast = fast
    }

    public var precision: Precision { state.precision }
    public var fast: FastMath { state.fast }

    /// The mapped files the bound tensors borrow from.
    public var mappedFiles: [PageReleasing] { Array(state.files.values) }

    private func noteOwner(_ owner: AnyObject?) {
        if let file = owner as? PageReleasing { state.files[ObjectIdentifier(file)] = file }
    }

    private init(source: WeightSource, prefix: String, state: State) {
        self.source = source
        self.prefix = prefix
        self.state = state
    }

    /// The key prefix of this scope: the module path in the checkpoint's naming.
    public var path: String { prefix }

    /// A binder whose keys are relative to `component` (joined with ".").
    public func scoped(_ component: String) -> WeightBinder {
        WeightBinder(source: source, prefix: join(component), state: state)
    }

    private func join(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }

    /// Stands in for a missing, wrong-shape or unreadable weight until `finish()` reports it:
    /// zeros mapped read-only, which take no memory however large the expected shape (a file with
    /// none of SD 1.5's keys would otherwise allocate its 3.4 GB of zeros before failing).
    /// Weights are never written to (borrowed ones live in read-only mappings too).
    static func placeholder(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        guard let pages = ZeroPages(floats: n),
              let t = try? Tensor(shape: shape, storage: TensorStorage(borrowing: pages.pointer, count: n, owner: pages)) else {
            return Tensor(zeros: shape)
        }
        return t
    }

    /// The tensor at `key` with `shape`. Problems are recorded and a zero tensor of the expected
    /// shape is returned so binding can go on; `finish()` turns them into one error.
    /// `alternatives` are other layouts of the same weight (a 1×1 conv stored for a linear, say):
    /// a stored shape with the same element count is accepted and reshaped.
    public func tensor(_ key: String, shape: [Int], acceptingReshapeOf alternatives: [[Int]] = []) -> Tensor {
        let name = join(key)
        guard let stored = source.shape(of: name) else {
            state.missing.append(name)
            return Self.placeholder(shape)
        }
        state.used.insert(name)
        guard stored == shape || alternatives.contains(stored) else {
            state.wrongShape.append("\(name) is \(stored), expected \(shape)")
            return Self.placeholder(shape)
        }
        do {
            let t = try source.float32(name)
            noteOwner(t.storage.owner)
            return stored == shape ? t : try t.reshaped(shape)
        } catch {
            state.unreadable.append("\(error)")
            return Self.placeholder(shape)
        }
    }

    /// A layer weight (linear or convolution matrix) held at the binder's precision: float32
    /// (borrowed from the mapping when the file stores aligned fp32) or 16 bits (borrowed when the
    /// file stores that format, else rounded once). Problems are recorded as in `tensor`.
    public func weight(_ key: String, shape: [Int], acceptingReshapeOf alternatives: [[Int]] = []) -> WeightData {
        guard let format = state.precision.halfFormat else {
            return .float(tensor(key, shape: shape, acceptingReshapeOf: alternatives))
        }
        let name = join(key)
        guard let stored = source.shape(of: name) else {
            state.missing.append(name)
            return .float(Self.placeholder(shape))
        }
        state.used.insert(name)
        guard stored == shape || alternatives.contains(stored) else {
            state.wrongShape.append("\(name) is \(stored), expected \(shape)")
            return .float(Self.placeholder(shape))
        }
        do {
            let h = try source.half(name, format: format)
            noteOwner(h.storage.owner)
            return .half(stored == shape ? h : try h.reshaped(shape))
        } catch {
            state.unreadable.append("\(error)")
            return .float(Self.placeholder(shape))
        }
    }

    /// A linear or convolution weight in the form its layer will compute with: `weight(...)`
    /// for exact arithmetic, else reordered for Winograd (3×3 stride-1 convolutions, when
    /// `winogradEligible`; transformed per call) or packed for bf16 products. Winograd stays in
    /// float32 even when bf16 is chosen too.
    public func layerWeight(_ key: String, shape: [Int], acceptingReshapeOf alternatives: [[Int]] = [],
                            winogradEligible: Bool) -> FastKernel {
        let fast = state.fast
        // Every eligible layer: Winograd's transformed weight (4× the weight) is made per call, a
        // block of rows at a time, so it costs no memory (see WinogradWeight).
        let winograd = fast.contains(.winograd) && winogradEligible
        // A layer no fast form applies to is held as any other weight (16 bits at fp16 precision).
        guard winograd || fast.contains(.bf16) else { return .plain(weight(key, shape: shape, acceptingReshapeOf: alternatives)) }
        let t = tensor(key, shape: shape, acceptingReshapeOf: alternatives)  // float32 (borrowed when it can be)
        // A stand-in for a weight that failed to bind: the load fails at finish(), so no fast form.
        if t.storage.owner is ZeroPages { return .plain(.float(t)) }
        // The mapped fp32 bytes were only read to build the fast form: give their pages back at
        // once, or loading holds the whole fp32 file and every transformed copy at the same time.
        func released(_ kernel: FastKernel) -> FastKernel {
            if let file = t.storage.owner as? PageReleasing { file.releaseResidentPages(at: t.pointer, bytes: t.count * 4) }
            return kernel
        }
        do {
            if winograd {
                let w = try WinogradWeight(weight: t)
                return w.keepsWeight ? .winograd(w) : released(.winograd(w))
            }
            if fast.contains(.bf16) { return released(.bf16(try PackedBF16Matrix(t))) }
        } catch {
            state.unreadable.append("\(join(key)): \(error)")
        }
        return .plain(.float(t))
    }

    /// True when the source holds `key` (for optional parts such as a conv shortcut).
    public func has(_ key: String) -> Bool { source.shape(of: join(key)) != nil }

    /// Stored shape of `key`, for configs read off the weights.
    public func shape(of key: String) -> [Int]? { source.shape(of: join(key)) }

    /// Keys under this binder's prefix that no block used.
    public var unused: [String] {
        let p = prefix.isEmpty ? "" : prefix + "."
        return source.tensorNames.filter { $0.hasPrefix(p) && !state.used.contains($0) }.sorted()
    }

    /// Throws one error listing every missing, wrong-shape and unreadable key; returns the unused
    /// keys (callers report them as a warning: checkpoints often carry extras such as EMA copies).
    @discardableResult
    public func finish(model: String, ignoringUnused ignored: (String) -> Bool = { _ in false }) throws -> [String] {
        let s = state
        if !s.missing.isEmpty || !s.wrongShape.isEmpty || !s.unreadable.isEmpty {
            var parts: [String] = []
            if !s.missing.isEmpty { parts.append("\(s.missing.count) missing (\(Self.sample(s.missing)))") }
            if !s.wrongShape.isEmpty { parts.append("\(s.wrongShape.count) wrong-shape (\(Self.sample(s.wrongShape)))") }
            if !s.unreadable.isEmpty { parts.append("\(s.unreadable.count) unreadable (\(Self.sample(s.unreadable)))") }
            throw WeightLoadError(description: "\(source.label): \(model) weights do not fit: " + parts.joined(separator: "; "))
        }
        return unused.filter { !ignored($0) }
    }

    static func sample(_ items: [String], limit: Int = 3) -> String {
        let head = items.prefix(limit).joined(separator: ", ")
        return items.count > limit ? head + ", … \(items.count - limit) more" : head
    }
}

/// A `WeightSource` over an in-memory dictionary (tests, converted layouts).
public struct DictionaryWeights: WeightSource {
    public let tensors: [String: Tensor]
    public let label: String
    public init(_ tensors: [String: Tensor], label: String = "weights") {
        self.tensors = tensors
        self.label = label
    }
    public var tensorNames: [String] { Array(tensors.keys) }
    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }
    public func float32(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw WeightLoadError(description: "\(label): no tensor \(name)") }
        return t
    }
}

/// An anonymous read-only mapping: zeros that use no memory until read, and then only the
/// kernel's shared zero page.
final class ZeroPages {
    let pointer: UnsafeMutablePointer<Float>
    private let bytes: Int

    init?(floats: Int) {
        guard floats >= 0, case (let bytes, false) = max(floats, 1).multipliedReportingOverflow(by: 4) else { return nil }
        let p = mmap(nil, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { return nil }
        self.pointer = p.bindMemory(to: Float.self, capacity: max(floats, 1))
        self.bytes = bytes
    }

    deinit { munmap(pointer, bytes) }
}
