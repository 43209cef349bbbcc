#!/usr/bin/env python3
"""featviz against PyTorch on the same work: the benchmark harness.

    /usr/bin/python3 bench/run.py [--featviz build/release/featviz] [--reps N]
                                  [--only classviz48,dream512] [--json OUT.json]
                                  [--isa portable|avx2|avx512]

Run from anywhere; it works in the repository root. Steps:
  1. bench/make_data.py writes the model and inputs to bench/data/ (once);
  2. bench/fma_peak.c is built with gcc -O2 -march=native -fopenmp and run:
     the machine's single-precision FMA peak, 1 thread and all threads;
  3. for each workload, featviz (`featviz run bench/<workload>.ini --set
     model.path=... --set output.dir=...`) and the PyTorch reference
     (bench/torch_ref.py under /usr/bin/python3) run alternately, each under
     /usr/bin/time -f '%e %M' (wall seconds, peak RSS in KB), both with 2
     threads (OMP_NUM_THREADS=2, torch.set_num_threads(2));
  4. prints, per workload: median wall time of each, the featviz/PyTorch
     ratio, the peak RSS of each (largest over the runs), and featviz's
     achieved GFLOP/s: analytic conv + dense multiply-adds x2 of the work
     (forward, plus the input-gradient backward for the optimizations,
     counted as much again) divided by featviz's median wall time.

--isa forces featviz's SIMD path (FEATVIZ_ISA) and, for avx2, runs PyTorch
with ONEDNN_MAX_CPU_ISA=AVX2 (for avx512, AVX512_CORE): the same vector width
on both sides. The path featviz ran (`featviz help isa`) is printed.

Wall times are whole processes (start to exit), model loading included, for
both tools. The machine may be shared: the load average before each
workload is printed beside it.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = '/usr/bin/python3'
THREADS = '2'

# workload -> default repetitions (each tool), slow ones fewer
WORKLOADS = {'classviz48': 2, 'filterviz48': 2, 'activations48': 3, 'predict48': 5, 'dream512': 3,
             'mnv2_filters': 1, 'mnv2_classes': 1}
# the real-size network of the mnv2_* workloads (beside the repository, see HELPERS/README)
MNV2 = os.path.join(os.path.dirname(ROOT), 'shared', 'keras-real',
                    'teachable_nested_mobilenetv2_tfkeras2.4_224.h5')
ONEDNN_ISA = {'avx2': 'AVX2', 'avx512': 'AVX512_CORE'}

# The network of bench/make_data.py: (kind, name, out channels, 'same')
NET = [('conv', 'conv2d_1', 32, 1), ('conv', 'conv2d_2', 32, 0), ('pool', 'max_pooling2d_1', 0, 0),
       ('conv', 'conv2d_3', 64, 1), ('conv', 'conv2d_4', 64, 0), ('pool', 'max_pooling2d_2', 0, 0),
       ('conv', 'conv2d_5', 128, 1), ('conv', 'conv2d_6', 128, 0), ('pool', 'max_pooling2d_3', 0, 0),
       ('dense', 'dense_1', 512, 0), ('dense', 'dense_2', 43, 0)]


def forward_flops(h, w, upto=None):
    """Multiply-adds x2 of one forward pass of one h x w image up to layer `upto`."""
    c, fl = 3, 0.0
    for kind, name, oc, same in NET:
        if kind == 'conv':
            if not same:
                h, w = h - 2, w - 2
            fl += 2.0 * h * w * oc * 9 * c
            c = oc
        elif kind == 'pool':
            h, w = h // 2, w // 2
        else:
            fl += 2.0 * h * w * c * oc
            h = w = 1
            c = oc
        if name == upto:
            break
    return fl


def dream_flops():
    total = 0.0
    for k in range(4):
        s = int(round(512 / 1.4 ** k))
        total += 10 * 2 * forward_flops(s, s, 'conv2d_4')
    return total


FLOPS = {
    'classviz48': 43 * 256 * 2 * forward_flops(48, 48),
    'filterviz48': 64 * 256 * 2 * forward_flops(48, 48, 'conv2d_3'),
    'activations48': 1000 * forward_flops(48, 48),
    'predict48': forward_flops(48, 48),
    'dream512': dream_flops(),
}


def mnv2_flops(fv, upto):
    """Multiply-adds x2 of one forward pass of one 224x224 image up to layer
    `upto` (None: the whole network), from `featviz info --json`."""
    info = json.loads(subprocess.check_output([fv, 'info', '--json', MNV2], text=True))
    total = 0.0
    for layer in info['layers']:
        total += layer.get('flops', 0) or 0
        if layer['name'] == upto:
            break
    return total


def timed(cmd, env, log):
    """Runs cmd under /usr/bin/time; returns (wall s, peak RSS KB, CPU s = user + sys)."""
    with tempfile.NamedTemporaryFile('r', suffix='.time') as tf:
        with open(log, 'a') as lf:
            lf.write('$ %s\n' % ' '.join(cmd))
            lf.flush()
            rc = subprocess.call(['/usr/bin/time', '-f', '%e %M %U %S', '-o', tf.name] + cmd, env=env,
                                 stdout=lf, stderr=lf, cwd=ROOT)
        line = open(tf.name).read().strip().splitlines()[-1]
    if rc != 0:
        sys.exit('failed (exit %d): %s\n(see %s)' % (rc, ' '.join(cmd), log))
    wall, rss, user, sys_s = line.split()
    return float(wall), int(rss), float(user) + float(sys_s)


def export_floors(fv_cmd, env, log, reps, r):
    """The activation export's two floors, measured alternately (medians):
    the forward pass alone over the same 1000 images (featviz writing only
    dense_2, the last layer: 172 KB), and writing the export's bytes into the
    same file system with plain buffered writes (dd, 1 MB blocks, into the
    page cache of tmpfs); and a cheaper export: a --layers subset (the three
    last layers). Prints them and the target 1.3 x (forward + write)."""
    out = fv_cmd[-1][len('output.dir='):]
    nbytes = 0
    for root, _, files in os.walk(out):
        nbytes += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    fwd_cmd = fv_cmd[:-1] + ['output.dir=' + out + '-fwd', '--set', 'activations.layers=dense_2']
    sub_cmd = fv_cmd[:-1] + ['output.dir=' + out + '-sub', '--set',
                             'activations.layers=conv2d_6,dense_1,dense_2']
    # the cheaper picture output: every layer's maps as 8-bit gray PNGs, no .npy
    png8_cmd = fv_cmd[:-1] + ['output.dir=' + out + '-png8', '--set', 'activations.npy=false', '--set',
                              'activations.png=true', '--set', 'activations.format=png8']
    dd_file = out + '-dd.bin'
    dd_cmd = ['dd', 'if=/dev/zero', 'of=' + dd_file, 'bs=1M', 'count=%d' % ((nbytes + (1 << 20) - 1) >> 20)]
    fw, wr, sb, p8 = [], [], [], []
    for _ in range(reps):
        for d in (out + '-fwd', out + '-sub', out + '-png8'):
            shutil.rmtree(d, ignore_errors=True)
        if os.path.exists(dd_file):
            os.unlink(dd_file)
        fw.append(timed(fwd_cmd, env, log)[0])
        wr.append(timed(dd_cmd, env, log)[0])
        sb.append(timed(sub_cmd, env, log)[0])
        p8.append(timed(png8_cmd, env, log))
    os.unlink(dd_file)
    png8_bytes = 0
    for root, _, files in os.walk(out + '-png8'):
        png8_bytes += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    f = dict(bytes=nbytes, forward_s=statistics.median(fw), write_s=statistics.median(wr),
             subset_s=statistics.median(sb), forward_runs=fw, write_runs=wr, subset_runs=sb,
             png8_s=statistics.median([x[0] for x in p8]), png8_cpu=statistics.median([x[2] for x in p8]),
             png8_mb=max(x[1] for x in p8) / 1024.0, png8_runs=[x[0] for x in p8], png8_bytes=png8_bytes)
    f['target_s'] = 1.3 * (f['forward_s'] + f['write_s'])
    print('  activations48 floors: forward alone %.3f s, writing %.0f MB %.3f s (dd), target 1.3 x sum = '
          '%.3f s: export %.3f s = %.2f x the sum; %.1fx faster than PyTorch; --layers conv2d_6,dense_1,'
          'dense_2: %.3f s (runs: %s | %s | %s)' % (
              f['forward_s'], nbytes / 1e6, f['write_s'], f['target_s'], r['featviz_s'],
              r['featviz_s'] / (f['forward_s'] + f['write_s']), r['pytorch_s'] / r['featviz_s'], f['subset_s'],
              ' '.join('%.2f' % x for x in fw), ' '.join('%.2f' % x for x in wr),
              ' '.join('%.2f' % x for x in sb)), flush=True)
    print('  activations48 --format png8 (8-bit maps of every layer, no .npy): %.3f s, %.2f CPU s, %.0f MB peak, '
          '%.0f MB written (runs: %s)' % (f['png8_s'], f['png8_cpu'], f['png8_mb'], png8_bytes / 1e6,
                                          ' '.join('%.2f' % x for x in f['png8_runs'])), flush=True)
    return f


def fma_peak(work):
    exe = os.path.join(work, 'fma_peak')
    subprocess.check_call(['gcc', '-O2', '-march=native', '-fopenmp', os.path.join(HERE, 'fma_peak.c'),
                           '-o', exe])
    env = dict(os.environ, OMP_NUM_THREADS=THREADS)
    out = subprocess.check_output([exe], env=env, text=True)
    peaks = {}
    for line in out.splitlines():
        _, isa, thr, gf = line.split()
        peaks[(isa, int(thr))] = float(gf)
    return peaks


LAYER_BENCH_SRC = ['bench/layer_bench.c', 'src/core/error.c', 'src/core/shape.c', 'src/kernels/isa.c',
                   'src/kernels/gemm.c', 'src/kernels/im2col.c', 'src/kernels/winograd.c', 'src/layers/conv2d.c',
                   'src/layers/conv_pick.c', 'src/layers/dense.c', 'src/layers/pool.c', 'src/layers/depthwise.c',
                   'src/kernels/act.c',
                   'src/layers/prepare.c']


def conv_rate(work, env, peaks, isa):
    """The conv layers forward + backward as the optimizer runs them
    (bench/layer_bench.c `lanes`: every thread a lane of 11 images through
    the six conv layers of the 48x48 network), in effective GFLOP/s (direct
    convolution multiply-adds x2; Winograd needs fewer), against the FMA peak
    of the same run on as many threads, for the SIMD path in use."""
    exe = os.path.join(work, 'layer_bench')
    subprocess.check_call(['gcc', '-std=c11', '-O3', '-fopenmp', '-D_POSIX_C_SOURCE=200809L', '-Iinclude', '-Isrc']
                          + LAYER_BENCH_SRC + ['-lm', '-o', exe], cwd=ROOT)
    out = subprocess.check_output([exe, '11', '20', '-', 'lanes'], env=env, text=True).strip()
    gf, per_cpu = float(out.split(': ')[1].split()[0]), float(out.split('(')[1].split()[0])
    key = isa if isa in ('avx2', 'avx512') else ('avx512' if ('avx512', 1) in peaks else 'avx2')
    peak2, peak1 = peaks.get((key, int(THREADS))), peaks.get((key, 1))
    # the peak is wall time too: under load both shrink alike; per CPU second
    # compare with an idle machine's 1-thread peak
    print('conv layers forward + backward (%s path; bench/layer_bench.c, lanes of 11 side by side): %s; '
          '%.0f%% of the %s FMA peak on %s threads in this run (%.1f)' % (
              isa or 'best', out, 100 * gf / peak2, key, THREADS, peak2), flush=True)
    return dict(line=out, gflops=gf, gflops_per_cpu=per_cpu, peak=peak2, peak1=peak1, peak_isa=key,
                fraction=gf / peak2, fraction_cpu=per_cpu / peak1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--featviz', default=os.path.join(ROOT, 'build', 'release', 'featviz'))
    ap.add_argument('--reps', type=int, default=0, help='repetitions per tool (default: per workload)')
    ap.add_argument('--only', default='', help='comma-separated workloads')
    ap.add_argument('--json', default='', help='also write the results here')
    ap.add_argument('--work', default='', help='scratch folder (default: a new temporary one)')
    ap.add_argument('--isa', default='', choices=['', 'portable', 'avx2', 'avx512'],
                    help="featviz's SIMD path (FEATVIZ_ISA); PyTorch under ONEDNN_MAX_CPU_ISA to match")
    a = ap.parse_args()
    fv = os.path.abspath(a.featviz)
    if not os.access(fv, os.X_OK):
        sys.exit('no featviz binary at %s (build it, or pass --featviz)' % fv)
    ap_isa = a.isa
    names = [w for w in a.only.split(',') if w] or list(WORKLOADS)
    for w in names:
        if w not in WORKLOADS:
            sys.exit('unknown workload %s; known: %s' % (w, ', '.join(WORKLOADS)))
    data = os.path.join(HERE, 'data')
    model = os.path.join(data, 'gtsrb48_bench.h5')
    if not os.path.exists(os.path.join(data, 'dream512.png')):
        subprocess.check_call([PY, os.path.join(HERE, 'make_data.py'), data])
    # outputs on tmpfs where there is one: both tools write the same bytes, and
    # the disk's write-back would otherwise decide the activation export's times
    shm = '/dev/shm' if os.path.isdir('/dev/shm') else None
    work = a.work or tempfile.mkdtemp(prefix='featviz-bench-', dir=shm)
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, 'log.txt')
    env = dict(os.environ, OMP_NUM_THREADS=THREADS, BENCH_THREADS=THREADS)
    env.pop('FEATVIZ_ISA', None)
    env.pop('ONEDNN_MAX_CPU_ISA', None)
    if ap_isa:
        env['FEATVIZ_ISA'] = ap_isa
        if ap_isa in ONEDNN_ISA:
            env['ONEDNN_MAX_CPU_ISA'] = ONEDNN_ISA[ap_isa]
    isa_line = subprocess.run([fv, 'help', 'isa'], env=env, text=True, capture_output=True)
    if isa_line.returncode != 0:
        sys.exit(isa_line.stderr.strip())
    print('featviz SIMD path: %s; PyTorch: ONEDNN_MAX_CPU_ISA=%s' % (
        isa_line.stdout.strip(), env.get('ONEDNN_MAX_CPU_ISA', '(unset: its best)')))
    flops = dict(FLOPS)
    if any(w.startswith('mnv2_') for w in names):
        flops['mnv2_filters'] = 32 * 128 * 2 * mnv2_flops(fv, 'block_6_expand_relu')
        flops['mnv2_classes'] = 4 * 128 * 2 * mnv2_flops(fv, None)

    peaks = fma_peak(work)
    print('FMA peak (GFLOP/s): ' + ', '.join('%s %d thread%s %.1f' % (isa, t, '' if t == 1 else 's', g)
                                              for (isa, t), g in sorted(peaks.items())))
    conv = conv_rate(work, env, peaks, ap_isa)
    print('featviz: %s; PyTorch: %s bench/torch_ref.py; %s threads each; log: %s' % (fv, PY, THREADS, log))
    results = []
    hdr = '%-14s %10s %10s %8s %9s %10s %10s %9s %6s  %s' % (
        'workload', 'featviz s', 'pytorch s', 'ratio', 'cpu ratio', 'fv MB', 'torch MB', 'GFLOP/s', 'load',
        'runs (fv | torch), wall s / cpu s')
    print(hdr)
    for w in names:
        reps = a.reps or WORKLOADS[w]
        load = os.getloadavg()[0]
        wm = MNV2 if w.startswith('mnv2_') else model
        fv_cmd = [fv, 'run', os.path.join('bench', w + '.ini'), '--set', 'model.path=' + wm,
                  '--set', 'output.dir=' + os.path.join(work, 'featviz', w)]
        pt_cmd = [PY, os.path.join(HERE, 'torch_ref.py'), w, wm, data, os.path.join(work, 'torch', w)]
        ft, fm, tt, tm, fc, tc = [], [], [], [], [], []
        for _ in range(reps):
            for d in (fv_cmd[-1][len('output.dir='):], pt_cmd[-1]):
                shutil.rmtree(d, ignore_errors=True)  # no run finds the previous one's files
            t, m, c = timed(fv_cmd, env, log)
            ft.append(t), fm.append(m), fc.append(c)
            t, m, c = timed(pt_cmd, env, log)
            tt.append(t), tm.append(m), tc.append(c)
        r = dict(workload=w, featviz_s=statistics.median(ft), pytorch_s=statistics.median(tt),
                 featviz_mb=max(fm) / 1024.0, pytorch_mb=max(tm) / 1024.0, featviz_runs=ft,
                 pytorch_runs=tt, featviz_cpu=fc, pytorch_cpu=tc, gflop=flops[w] * 1e-9, load=load, load_after=os.getloadavg()[0],
                 isa=isa_line.stdout.strip(), onednn=env.get('ONEDNN_MAX_CPU_ISA', ''))
        r['ratio'] = r['featviz_s'] / r['pytorch_s']
        r['cpu_ratio'] = statistics.median(fc) / statistics.median(tc)
        r['gflops'] = flops[w] * 1e-9 / r['featviz_s']
        results.append(r)
        print('%-14s %10.3f %10.3f %8.3f %9.3f %10.1f %10.1f %9.1f %6.2f  %s | %s' % (
            w, r['featviz_s'], r['pytorch_s'], r['ratio'], r['cpu_ratio'], r['featviz_mb'], r['pytorch_mb'],
            r['gflops'], load, ' '.join('%.2f/%.2f' % x for x in zip(ft, fc)),
            ' '.join('%.2f/%.2f' % x for x in zip(tt, tc))), flush=True)
        if w == 'activations48':
            r['floors'] = export_floors(fv_cmd, env, log, reps, r)
            results[-1] = r
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(peaks={'%s_%d' % k: v for k, v in peaks.items()}, conv=conv, results=results,
                           time=time.strftime('%Y-%m-%d %H:%M:%S')), f, indent=1)


if __name__ == '__main__':
    main()
