"""A radiance field (NeRF) that trains on a CPU: a sparse voxel grid of density and SH colour (Plenoxels-like,
no network), rendered by compiled C++ kernels on the CPU and by the same rule in torch on CUDA.

Why a grid without a decoder: on 2 CPU cores the cost is per sample, and a grid sample is 8 row reads and
no matrix product; its gradient touches 8 rows, so Adam updates only those (hash grids and TensoRF need an
MLP or dense factor updates per sample). Lego 200 px figures are in ``bench/results/nerf-*.md``.
"""
