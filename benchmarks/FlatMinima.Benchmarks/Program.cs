// FlatMinima benchmarks: ratios measured side by side in one process (never timed assertions in tests).
//   steps       SGD vs SAM vs ASAM step time, SmallCnn (1×28×28) and ResNet-20 (3×32×32), batch 128, interleaved rounds
//   scoring     ML.NET Transform + reading Score vs a raw TorchSharp batched forward on the same images
//   onnx-scoring  the same trained model scored by our TorchSharp Transform vs its ConvertToOnnx export in ONNX Runtime
//               (ApplyOnnxModel and InferenceSession.Run, batches of 256), same test images; ratios and the largest score difference
//               (--onnx-images N (10000), --onnx-arch SmallCnn|ResNet20|ResNet18, --onnx-rounds N (3))
//   data        batch assembly (index_select from the in-memory training tensor) vs an SGD step, SmallCnn
//   throughput  end-to-end training images/s from an IDataView (ML.NET Fit) for SGD and SAM, SmallCnn, batch 128;
//               with --peer-bench DIR also runs the PyTorch harness (DIR/python/bench.py) in the same run
//   hessian     one Hessian-vector product vs one gradient (ResNet-20), top-1 eigenvalue and 100-probe trace wall time
//               (--hessian-parts hvp,lanczos,trace,power selects parts)
//   sharpness-experiment  SGD / SAM / ASAM / SWAD models side by side: accuracy, gap, every sharpness measure, correlations
//   incremental F2M incremental few-shot on Fashion-MNIST (6 base classes + 4 novel, 5 shots): F2M vs ablation and baselines
//               (--f2m-preset reduced|full|paper, --f2m-base-per-class, --f2m-epochs, --f2m-test-per-class, --f2m-seeds, --f2m-arch,
//                --f2m-ways 1,2, --f2m-session-lr, --f2m-session-epochs, --f2m-rounding off|update|reference, --f2m-refresh-prototypes on|off,
//                --f2m-loss-normalization same|None|Prototypes|Cosine, --f2m-base-cache DIR, --f2m-out FILE)
//   f2m-step    F2M's flat-region step (M = 2, discrete Beta and uniform noise) vs an SGD step, ResNet-20 1×28×28, batch 128
//   sharpness-defaults    EvaluateSharpness wall time, previous vs current default options (SmallCnn, 500 images), each measure alone
//   augmentation-accuracy  quickstart-style SmallCnn + SAM on the embedded subset, Standard augmentation vs none, same
//               epochs and seeds (--aug-epochs N (12), --aug-seeds 1,2,3)
//   averaging   SWA/EMA/SWAD update cost vs an SGD step, ResNet-20 (3×32×32), batch 128, interleaved rounds
//   domain-generalization  Rotated Fashion-MNIST, DomainBed protocol: ERM, ERM+SWA, ERM+SWAD, SAM, SAM+SWAD
//               (--dg-preset reduced|full, --dg-arch cnn|resnet18-pretrained, --dg-size N (the ResNet-18's input side, 32),
//                --dg-steps, --dg-batch, --dg-eval, --dg-width, --dg-images, --dg-lr, --dg-rho,
//                --dg-seeds 0,1,2, --dg-test 0,5 (domain indices of 0,15,…,75°), --dg-methods, --dg-out FILE,
//                --dg-results FILE.json|FILE.csv, --dg-from A.json,B.json (merge parts run separately, report without training))
//   resnet18-steps  ResNet-18 (TorchVision layout) SGD and SAM step at --resnet18-size (112), batch --resnet18-batch (32),
//               then TorchVision's resnet18 in Debian's PyTorch (benchmarks/peer/resnet18_step.py) in the same run
//   streaming   epoch time, streaming + Standard augmentation vs in memory without it (SmallCnn on Fashion-MNIST PNGs, --images;
//               ResNet-18 at 224×224 on --stream-photos generated JPEGs), alternating --stream-rounds; decode/augment images/s
//   streaming-memory  peak resident memory of Fit, 6,000 vs 60,000 Fashion-MNIST PNGs and 1,000 vs 10,000 generated
//               JPEGs at 224×224, streaming and in memory, a child process (mode fit-memory) per configuration
//   transfer    low-data transfer learning on Fashion-MNIST (K images per class, seeded draws, 2,000 test images): ML.NET's
//               DnnFeaturizeImage ResNet-18 + LbfgsMaximumEntropy vs FlatMinima from scratch (SmallCnn, ResNet-20 + SAM) vs
//               FlatMinima fine-tuning the same ResNet-18 (head only, SGD, SAM, SAM + SWAD)
//               (--transfer-k 10,50,200, --transfer-seeds 1,2,3, --transfer-size N, --transfer-methods a,b,…, --transfer-out FILE,
//                --transfer-test N, --transfer-steps N, --transfer-scratch-steps N, --transfer-min-epochs N, --transfer-lr X,
//                --transfer-backbone-factor X)
//   label-noise Fashion-MNIST with symmetric label noise (N images per seed, a noisy validation split, clean test set): SGD, SAM,
//               ASAM, SAM+SWA, SAM+EMA; final and early-stopped clean test accuracy, memorization, gaps to SGD
//               (--noise-preset tiny|reduced|full, --noise-images N, --noise-val F, --noise-test N, --noise-epochs N,
//                --noise-seeds 1,2,3, --noise-rates 0,0.2,0.4, --noise-methods sgd,sam,asam,sam-swa,sam-ema, --noise-arch SmallCnn|ResNet20,
//                --noise-augment standard|none, --noise-batch N, --noise-lr X, --noise-rho X, --noise-asam-rho X, --noise-swa-lr X, --noise-out FILE,
//                --noise-plot FILE.png, --noise-results FILE.json|FILE.csv, --noise-from FILE.json)
//   clean-budget all 60,000 Fashion-MNIST training images at a fixed budget: SGD vs SAM vs SAM+SWA, test accuracy, time ratio vs SGD
//               (--budget-preset tiny|reduced|full, --budget-epochs N, --budget-seeds 1,2,3, --budget-methods sgd,sam,sam-swa,
//                --budget-images N, --budget-test N, --budget-arch, --budget-augment, --budget-batch, --budget-lr, --budget-rho,
//                --budget-asam-rho, --budget-swa-lr, --budget-out FILE, --budget-plot FILE.png, --budget-results FILE.json|FILE.csv,
//                --budget-from FILE.json)
//               (label-noise, clean-budget and domain-generalization: --plan-only prints the protocol and the time estimate
//                without training; domain-generalization measures a few steps for it)
//   efficient-sam  SGD, SAM, LookSAM, RST, AE-SAM and MESA on the embedded subset (SmallCnn): test accuracy, SAM-step
//               fraction, passes per step, Fit time (--esam-epochs N (12), --esam-seeds 1,2,3)
//   precision   float32 vs bfloat16 mixed precision step time, SGD and SAM side by side (plus a whole-network bfloat16 SGD
//               reference without float32 master weights): SmallCnn 1×28×28 and ResNet-20 3×32×32 at batch 128, ResNet-18
//               (TorchVision layout) at 112 and 224, batch --resnet18-batch (32); prints the CPU model and flags
//               (--precision-rounds N (6), --precision-warmup N (2), --precision-models smallcnn,resnet20,resnet18-112,resnet18-224)
//   precision-runs  whole ClassifierTrainer runs of ResNet-18 on synthetic images, one per method (fp32/bf16 SGD, SAM and the
//               efficient steps), wall time and its ratio to fp32 SGD's (--precision-run-size N (112), --precision-run-images N (640),
//               --precision-run-epochs N (2), --precision-run-methods sgd,sgd-bf16,…, batch --resnet18-batch (32))
// Usage: dotnet run -c Release --project benchmarks/FlatMinima.Benchmarks -- <mode>[,<mode>…] [options]
//   --fashion-mnist DIR   full Fashion-MNIST idx files (default /usr/share/datasets/fashion-mnist)
//   --threads N (2)  --cnn-steps N (60)  --resnet-steps N (12)  --images N (12800)  --no-mallopt  --peer-bench DIR
using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Benchmarks;
using FlatMinima.Torch.Native;
using static TorchSharp.torch;

var options = BenchmarkOptions.Parse(args);
set_num_threads(options.Threads);
set_num_interop_threads(1);
if (options.Mallopt) GlibcMalloc.TuneForTensors();
Console.WriteLine($"# FlatMinima benchmarks — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, " +
                  $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, TorchSharp threads {options.Threads}, " +
                  $"glibc malloc tuned: {GlibcMalloc.IsTuned}");
Console.WriteLine($"# command: dotnet run -c Release --project benchmarks/FlatMinima.Benchmarks -- {string.Join(' ', args)}");
foreach (var mode in options.Modes)
{
    switch (mode)
    {
        case "steps": StepBenchmark.Run(options); break;
        case "scoring": ScoringBenchmark.Run(options); break;
        case "onnx-scoring": OnnxScoringBenchmark.Run(options); break;
        case "data": DataPathBenchmark.Run(options); break;
        case "throughput": ThroughputBenchmark.Run(options); break;
        case "hessian": HessianBenchmark.Run(options); break;
        case "sharpness-experiment": SharpnessExperiment.Run(options); break;
        case "sharpness-defaults": SharpnessDefaultsBenchmark.Run(options); break;
        case "averaging": AveragingBenchmark.Run(options); break;
        case "augmentation-accuracy": AugmentationAccuracy.Run(options); break;
        case "domain-generalization": DomainGeneralizationBenchmark.Run(options); break;
        case "incremental": IncrementalFewShotBenchmark.Run(options); break;
        case "f2m-step": StepBenchmark.RunFlatRegion(options); break;
        case "resnet18-steps": StepBenchmark.RunResNet18(options); break;
        case "streaming": StreamingBenchmark.Run(options); break;
        case "streaming-memory": StreamingBenchmark.RunMemory(options); break;
        case "transfer": TransferBenchmark.Run(options); break;
        case "label-noise": LabelNoiseBenchmark.Run(options); break;
        case "clean-budget": CleanBudgetBenchmark.Run(options); break;
        case "fit-memory": StreamingBenchmark.FitMemoryChild(options); break;
        case "efficient-sam": EfficientSamBenchmark.Run(options); break;
        case "precision": PrecisionBenchmark.Run(options); break;
        case "precision-runs": PrecisionBenchmark.RunWholeRuns(options); break;
        default: throw new ArgumentException($"Unknown mode '{mode}'; use steps, scoring, data, throughput, hessian, sharpness-experiment, sharpness-defaults, averaging, augmentation-accuracy, domain-generalization, incremental, f2m-step, resnet18-steps, streaming, streaming-memory, transfer, label-noise, clean-budget, efficient-sam, precision, precision-runs.");
    }
}
return 0;
