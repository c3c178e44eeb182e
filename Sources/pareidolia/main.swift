import Tensors
try BLAS.load(); print(BLAS.coreName)
