import Testing
@testable import Tensors
@Test func blasLoads() throws { try BLAS.load(); #expect(BLAS.coreName != "not loaded") }
