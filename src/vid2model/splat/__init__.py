"""3D Gaussian splatting that trains on a CPU (compiled tile rasteriser) and uses CUDA/gsplat when present.

Modules: ``rasterize`` (projection + differentiable compositing), ``kernels`` / ``kernels_numba``
(compiled CPU kernels), ``reference`` (plain-torch reference), ``sh``, ``model``, ``densify``,
``losses``, ``train`` (training loop), ``scenes`` (training views from COLMAP / arrays / NeRF folders).
"""
