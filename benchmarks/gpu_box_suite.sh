#!/usr/bin/env bash
# The speed figures that need a GPU box, in one command (meant to take a few minutes on an H100/H200;
# its parts were sized to 5 minutes or less each, the whole script has not run on a GPU yet):
#   1. GPU training (Cnn14, batch 32 + mixup): fp32 / bf16 + channels_last / + compile, Conv1d vs FFT STFT,
#      peak memory, and the HDF5 loader with 0/4/8/16 workers (docs/training.md);
#   2. the front end alone on the GPU (docs/models.md);
#   3. CPU inference on the box's own CPU, limited to 2 threads: official-style fp32 vs our fp32 vs bf16,
#      which measures the bf16 ratio where the CPU has AVX512-BF16/AMX (docs/inference.md), and what keeping
#      only the first convolution float32 (instead of the whole first block) gains in speed; plus fp32
#      and bf16 under torch.compile (first call reported apart).
# Usage: benchmarks/gpu_box_suite.sh OUTPUT_DIR   (JSON and logs land there)
set -euo pipefail
out="${1:?usage: benchmarks/gpu_box_suite.sh OUTPUT_DIR}"
mkdir -p "$out"
python="${PYTHON:-python}"
"$python" - <<'EOF' | tee "$out/machine.txt"
import platform, torch
print("torch", torch.__version__, "| cuda", torch.version.cuda, "|", platform.processor() or platform.machine())
if torch.cuda.is_available():
    print("gpu:", torch.cuda.get_device_name(0))
print("cpu avx512_bf16:", getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: None)(),
      "| amx:", getattr(torch.cpu, "_is_amx_tile_supported", lambda: None)())
EOF
"$python" benchmarks/bench_training.py --device cuda --json "$out/training_gpu.json" 2>&1 | tee "$out/training_gpu.txt"
"$python" benchmarks/bench_frontend.py --device cuda --batch 64 --repeats 10 --json "$out/frontend_gpu.json" \
    2>&1 | tee "$out/frontend_gpu.txt"
OMP_NUM_THREADS=2 "$python" benchmarks/bench_inference_bf16.py --models Cnn14 Cnn10 --threads 2 --repeats 3 --compile \
    --alt-fp32-modules conv_block1.conv1 --out "$out/inference_bf16_cpu.json" 2>&1 | tee "$out/inference_bf16_cpu.txt"
