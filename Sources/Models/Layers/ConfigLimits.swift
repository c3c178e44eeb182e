import Foundation

/// Sizes read from a config.json or off a checkpoint's shapes build whole networks, so a
/// stranger's file is held to plausible ranges before anything is built from them: zero heads
/// divide by zero, a billion layers never finish, a huge width asks for gigabytes.
func requireSize(_ value: Int, _ key: String, _ range: ClosedRange<Int>, source: String) throws {
    guard range.contains(value) else {
        throw WeightLoadError(description: "\(source): \(key) is \(value), outside the plausible \(range.lowerBound)…\(range.upperBound)")
    }
}

/// Channels split into groups (GroupNorm) or heads (attention) must divide evenly.
func requireDivisible(_ value: Int, _ key: String, by divisor: Int, _ divisorKey: String, source: String) throws {
    guard divisor > 0, value % divisor == 0 else {
        throw WeightLoadError(description: "\(source): \(key) \(value) is not a multiple of \(divisorKey) \(divisor)")
    }
}
