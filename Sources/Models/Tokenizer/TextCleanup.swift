import Foundation

/// The parts of `ftfy.fix_text` (which HF's CLIPTokenizer runs first) that change well-formed
/// prompts: HTML entities, Latin ligatures, full-width forms, curly quotes, then NFC.
/// Mojibake repair is not ported; prompts typed by people rarely contain it.
enum TextCleanup {
    static func fixText(_ text: String) -> String {
        // ftfy leaves entities alone when the text looks like HTML (contains "<").
        var s = text.contains("<") ? text : unescapeHTML(text)
        var out = String.UnicodeScalarView()
        for scalar in s.unicodeScalars {
            if let lig = ligatures[scalar.value] {
                out.append(contentsOf: lig.unicodeScalars)
            } else if scalar.value == 0x3000 {
                out.append(" ")
            } else if (0xFF01..<0xFFF0).contains(scalar.value) {
                out.append(contentsOf: String(scalar).precomposedStringWithCompatibilityMapping.unicodeScalars)
            } else if scalar.value == 0x02BC || (0x2018...0x201B).contains(scalar.value) {
                out.append("'")
            } else if (0x201C...0x201F).contains(scalar.value) {
                out.append("\"")
            } else {
                out.append(scalar)
            }
        }
        s = String(out)
        return s.precomposedStringWithCanonicalMapping
    }

    static let ligatures: [UInt32: String] = [
        0x132: "IJ", 0x133: "ij", 0x149: "ʼn", 0x1F1: "DZ", 0x1F2: "Dz", 0x1F3: "dz", 0x1C4: "DŽ", 0x1C5: "Dž",
        0x1C6: "dž", 0x1C7: "LJ", 0x1C8: "Lj", 0x1C9: "lj", 0x1CA: "NJ", 0x1CB: "Nj", 0x1CC: "nj",
        0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "ſt", 0xFB06: "st",
    ]

    /// The entities people paste into prompts; numeric references in decimal or hex.
    static let entities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "ndash": "–",
        "mdash": "—", "hellip": "…", "copy": "©", "reg": "®", "trade": "™", "deg": "°", "times": "×",
        "lsquo": "‘", "rsquo": "’", "ldquo": "“", "rdquo": "”", "eacute": "é", "egrave": "è", "agrave": "à",
        "ccedil": "ç", "ntilde": "ñ", "ouml": "ö", "uuml": "ü", "auml": "ä", "szlig": "ß",
    ]

    /// Replaces `&name;`, `&#NNN;` and `&#xHH;` (1–24 characters between `&` and `;`).
    static func unescapeHTML(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            let after = rest[rest.index(after: amp)...]
            if let semi = after.prefix(26).firstIndex(of: ";") {
                let body = after[..<semi]
                if let replacement = decodeEntity(body) {
                    out += replacement
                    rest = after[after.index(after: semi)...]
                    continue
                }
            }
            out += "&"
            rest = after
        }
        return out + rest
    }

    private static func decodeEntity(_ body: Substring) -> String? {
        guard (1...25).contains(body.count) else { return nil }
        if body.hasPrefix("#") {
            let digits = body.dropFirst()
            let value = digits.hasPrefix("x") || digits.hasPrefix("X") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
            return value.flatMap(Unicode.Scalar.init).map { String($0) }
        }
        guard body.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return nil }
        if let e = entities[String(body)] { return e }
        // ftfy also decodes upper-cased entity names (&AMP; → &).
        if body == body.uppercased(), let e = entities[body.lowercased()] { return e.uppercased() }
        return nil
    }
}
