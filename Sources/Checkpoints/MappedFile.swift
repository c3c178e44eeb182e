import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory. Tensors borrow pointers into the mapping and keep
/// this object alive as their storage owner, so weights are paged in lazily and never copied.
public final class MappedFile: PageReleasing, @unchecked Sendable {
    public let path: String
    /// Last path component, used in error messages.
    public let name: String
    public let size: Int
    /// Start of the mapping (a valid, never-dereferenced address when `size == 0`).
    public let base: UnsafeRawPointer
    private let storage: Storage
    private enum Storage { case none, mapped, heap }

    public init(path: String) throws {
        self.path = path
        let name = URL(fileURLWithPath: path).lastPathComponent
        self.name = name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CheckpointError(file: name, "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw CheckpointError(file: name, "cannot stat (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError(file: name, "not a regular file")
        }
        let size = Int(st.st_size)
        self.size = size
        if size == 0 {
            // mmap refuses zero lengths; an empty file is still a valid (if useless) input.
            self.base = UnsafeRawPointer(bitPattern: 0x1000)!
            self.storage = .none
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw CheckpointError(file: name, "cannot map \(size) bytes (\(String(cString: strerror(errno))))")
        }
        self.base = UnsafeRawPointer(p)
        self.storage = .mapped
    }

    /// A private copy of `bytes` standing in for a file named `name` (fuzzing, tests): readers see
    /// exactly these bytes, and a read past them is a heap overflow the address sanitizer reports
    /// (past a mapping it would land in the rest of the page, unnoticed).
    public init(copying bytes: UnsafeRawBufferPointer, name: String) {
        self.path = name
        self.name = name
        self.size = bytes.count
        guard let src = bytes.baseAddress, bytes.count > 0 else {
            self.base = UnsafeRawPointer(bitPattern: 0x1000)!
            self.storage = .none
            return
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
        p.copyMemory(from: src, byteCount: bytes.count)
        self.base = UnsafeRawPointer(p)
        self.storage = .heap
    }

    deinit {
        switch storage {
        case .mapped: munmap(UnsafeMutableRawPointer(mutating: base), size)
        case .heap: UnsafeMutableRawPointer(mutating: base).deallocate()
        case .none: break
        }
    }

    /// Drops the pages read so far from this process's resident set; the mapping is private and
    /// read-only, so they are only ever clean copies of the file and fault back in when touched.
    public func releaseResidentPages() {
        if storage == .mapped { madvise(UnsafeMutableRawPointer(mutating: base), size, Int32(MADV_DONTNEED)) }
    }

    public func releaseResidentPages(at pointer: UnsafeRawPointer, bytes: Int) {
        releaseResidentPages(offset: pointer - base, count: bytes)
    }

    /// As `releaseResidentPages`, for the whole pages inside `offset..<offset+count` only (a
    /// tensor just copied out; its neighbours' pages at either end stay).
    public func releaseResidentPages(offset: Int, count: Int) {
        guard storage == .mapped, contains(offset: offset, count: count) else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: base) + offset
        let first = (start + page - 1) / page * page, end = (start + count) / page * page
        if end > first { madvise(UnsafeMutableRawPointer(bitPattern: first), end - first, Int32(MADV_DONTNEED)) }
    }

    /// Whether `offset..<offset+count` lies inside the file (overflow-safe).
    public func contains(offset: Int, count: Int) -> Bool {
        guard offset >= 0, count >= 0 else { return false }
        let (end, overflow) = offset.addingReportingOverflow(count)
        return !overflow && end <= size
    }

    /// The bytes at `offset..<offset+count`; throws if they run past the end of the file.
    public func bytes(at offset: Int, count: Int, what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard contains(offset: offset, count: count) else {
            throw CheckpointError(file: name, "\(what()) at bytes \(offset)..<\(offset &+ count) runs past the end of the file (\(size) bytes; truncated?)")
        }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    /// All bytes of the file.
    public var allBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}

/// Little-endian reads from unaligned memory.
extension UnsafeRawBufferPointer {
    @inline(__always) func le16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    @inline(__always) func le32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    @inline(__always) func le64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}
