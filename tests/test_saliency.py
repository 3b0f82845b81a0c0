"""Grad-CAM and the localisation score."""

import numpy as np
import pytest
import torch
from torch import nn

from mer_bench.cli import main
from mer_bench.saliency import grad_cam, localisation_ceiling, localisation_score


class _Probe(nn.Module):
    """A fixed network whose class-1 evidence is the top-left quadrant of channel 0."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            self.features.weight[:] = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)

    def forward(self, x):
        f = torch.relu(self.features(x))
        return torch.stack([f[:, 1].mean((1, 2)), f[:, 0, :4, :4].mean((1, 2))], dim=1)


def test_grad_cam_finds_the_evidence_and_scores_it():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :4, :4] = 1.0
    maps, pred = grad_cam(_Probe(), x)
    assert pred.tolist() == [1, 1] and maps.shape == (2, 8, 8)
    assert maps[:, :3, :3].min() > 0.9 and maps[:, 5:, 5:].max() < 0.1
    mask = np.zeros((2, 8, 8), bool)
    mask[:, :4, :4] = True
    assert localisation_score(maps, mask).min() > 0.9
    assert localisation_score(maps, ~mask).max() < 0.1
    assert localisation_score(np.zeros((1, 8, 8)), mask[:1])[0] == pytest.approx(0.25)  # no mass: chance


def test_localisation_ceiling_is_what_the_layer_resolution_allows():
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 2:6, 4:12] = True  # a brow-like band in the top-left quadrant
    masks[1, 14:18, 14:18] = True  # a spot at the centre, where four cells of a 2x2 grid meet
    # one cell covering the frame: the map is uniform, the score is the mask's share (chance)
    assert localisation_ceiling(masks, (1, 1)) == pytest.approx(masks.mean(axis=(1, 2)))
    # a cell per pixel: a map can sit inside the mask
    assert localisation_ceiling(masks, (32, 32)) == pytest.approx([1.0, 1.0])
    coarse, fine = localisation_ceiling(masks, (2, 2)), localisation_ceiling(masks, (8, 8))
    chance = masks.mean(axis=(1, 2))
    assert chance[0] < coarse[0] and (coarse < fine).all() and (fine < 1).all()
    assert coarse[1] == pytest.approx(chance[1])  # four cells meet at the centre: a 2x2 map cannot point there
    # no non-negative 2x2 map does better than the best cell (a ratio of linear functions)
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    w = torch.as_tensor(rng.random((500, 1, 2, 2)))
    maps = F.interpolate(w, size=(32, 32), mode="bilinear", align_corners=False)[:, 0].numpy()
    assert localisation_score(maps, np.repeat(masks[:1], 500, 0)).max() <= coarse[0] + 1e-9


def test_grad_cam_on_a_3d_network():
    from mer_bench.methods.meranet import MERANet3D

    torch.manual_seed(0)
    model = MERANet3D(3, 3, width=4)
    maps, pred = grad_cam(model, torch.randn(2, 3, 8, 32, 32))
    assert maps.shape == (2, 8, 32, 32) and 0 <= maps.min() and maps.max() <= 1


def test_saliency_cli_compares_two_methods(tmp_path, capsys):
    assert main(["saliency", "--method", "meranet", "--method", "resnet3d18", "--set", "epochs=1", "--set", "width=4",
                 "--dataset-set", "n_subjects=8", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "saliency-synthetic.md").read_text()
    # the embedded dataset's suggestion (testbed) for both; the options given are in the command
    assert "| meranet | testbed |" in md and "| resnet3d18 | testbed |" in md and "meranet minus resnet3d18" in md
    assert "--dataset-set n_subjects=8" in md
    # per class motion: one row per AU group of the held-out clips, with its masks' chance and each method's share
    rows = [r for r in md.splitlines() if r.startswith("| AU") and not r.startswith("| AU (class)")]
    assert rows and all(r.count("|") == 6 for r in rows)
    assert "| AU1+2 (surprise) |" in md and "| AU12 (positive) |" in md
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    overall = float(next(r for r in md.splitlines() if r.startswith("| meranet |")).split("|")[3].split()[0])
    weighted = sum(int(c[1]) * float(c[3]) for c in cells) / sum(int(c[1]) for c in cells)
    assert weighted == pytest.approx(overall, abs=2e-3)  # the groups partition the held-out clips
    # the layer's grid and the ceiling its resolution allows, above chance
    row = next(r for r in md.splitlines() if r.startswith("| meranet |")).split("|")
    chance = float(md.split("chance (the masks' area share) is ")[1][:5])
    assert row[4].strip() == "2x2" and chance < float(row[5]) < 1
    # provenance: the commit (marked when uncommitted), the CPU and threads, each training's time
    from mer_bench.pipeline.runner import git_commit
    from mer_bench.runtime import cpu_description

    prov = md.split("## Provenance", 1)[1]
    assert f"commit {git_commit()}" in prov and cpu_description() in prov and "meranet trained in" in prov
    assert ("uncommitted code" in prov) == git_commit().endswith("-dirty")
    assert (tmp_path / "saliency-meranet.png").stat().st_size > 5000
    assert main(["saliency", "--method", "chance", "--out", str(tmp_path)]) == 2
    assert "Grad-CAM needs a neural method" in capsys.readouterr().err
