"""PyTorch side of the ResNet-18 step benchmark: TorchVision's resnet18 (random weights, 10 classes), SGD and SAM steps
on one random batch already in memory, interleaved rounds, median wall time per step; prints one JSON line.
Same work as the C# side (benchmarks/FlatMinima.Benchmarks, mode resnet18-steps): SGD lr 0.01, momentum 0.9, weight
decay 5e-4; SAM rho 0.05 with the global 2-norm of the gradients (davda54/sam's first and second step)."""
import argparse, json, statistics, time
import torch
import torch.nn.functional as F
import torchvision


def sgd_step(model, opt, x, y):
    opt.zero_grad(set_to_none=False)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def sam_step(model, opt, params, x, y, rho=0.05):
    opt.zero_grad(set_to_none=False)
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        grad_norm = torch.stack([p.grad.norm(2) for p in params]).norm(2)
        scale = rho / (grad_norm + 1e-12)
        eps = []
        for p in params:
            e = p.grad * scale
            p.add_(e)
            eps.append(e)
    opt.zero_grad(set_to_none=False)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p, e in zip(params, eps):
            p.sub_(e)
    opt.step()
    return loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 10, (a.batch,))
    models = []
    for _ in range(2):
        m = torchvision.models.resnet18(num_classes=10)
        m.train()
        models.append((m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)))
    params = [p for p in models[1][0].parameters() if p.requires_grad]
    sgd, sam = [], []
    for r in range(a.warmup + a.rounds):
        t = time.perf_counter(); sgd_step(models[0][0], models[0][1], x, y); t1 = time.perf_counter() - t
        t = time.perf_counter(); sam_step(models[1][0], models[1][1], params, x, y); t2 = time.perf_counter() - t
        if r >= a.warmup:
            sgd.append(t1 * 1000); sam.append(t2 * 1000)
    print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__, "sgd_ms": statistics.median(sgd),
                      "sam_ms": statistics.median(sam), "rounds": a.rounds}))


if __name__ == "__main__":
    main()
