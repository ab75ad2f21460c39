"""A new FCN from the public parts: FCN-4s (a pool2 skip) as one short class.

Its crop offsets come out of the coordinate maps (checked against convert.coord_map's walk over
the Caffe net that fcn_ref.save would write for it), its new skip adds exact zeros before training, and
staging it from a trained FCN-8s copies every FCN-8s tensor that has a place in it.
"""
from __future__ import annotations

import torch

from convert.coord_map import IDENTITY, compose, computed_crop_offsets
from fcn_ref import FCN, Crop, Skip, Upsample, score_conv
from fcn_ref.caffe_names import caffe_layer as layer, caffe_state_dict
from fcn_ref.saving import caffe_net
from fcn_ref.surgery import stage_into
from fcn_ref.trunks import VGG16
import fcn_ref
from conftest import FIXTURES


class FCN4s(FCN):
    """FCN-8s plus a skip from pool2: the paper's figure one stride further."""

    arch_name = "fcn4s"

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c, k = self.config, self.config.num_classes
        self.trunk = t = VGG16(c.in_channels, c.widths, c.fc_widths, taps=("pool2", "pool3", "pool4"))
        self.score_fr = score_conv(t.channels["fc7"], k)
        self.upscore2 = Upsample(k, 4, 2)
        at = compose(t.maps["fc7"], self.upscore2.coord_map)
        self.skip_pool4 = Skip(t.channels["pool4"], k, t.maps["pool4"], at)
        self.upscore_pool4 = Upsample(k, 4, 2)
        at = compose(at, self.upscore_pool4.coord_map)
        self.skip_pool3 = Skip(t.channels["pool3"], k, t.maps["pool3"], at)
        self.upscore_pool3 = Upsample(k, 4, 2)
        at = compose(at, self.upscore_pool3.coord_map)
        self.skip_pool2 = Skip(t.channels["pool2"], k, t.maps["pool2"], at)
        self.upscore4 = Upsample(k, 8, 4)
        self.crop = Crop.aligning(compose(at, self.upscore4.coord_map), IDENTITY)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blobs = self.trunk(x)
        score = self.upscore2(self.score_fr(blobs["fc7"]))
        score = self.upscore_pool4(self.skip_pool4(score, blobs["pool4"]))
        score = self.upscore_pool3(self.skip_pool3(score, blobs["pool3"]))
        return self.crop(self.upscore4(self.skip_pool2(score, blobs["pool2"])), x)


def _fcn8s() -> fcn_ref.FCN8s:
    """A trained (random-weight, real-Caffe fixture) reduced FCN-8s."""
    return fcn_ref.FCN8s.from_caffemodel(FIXTURES / "voc-fcn8s" / "net.caffemodel")


def _staged() -> tuple[fcn_ref.FCN8s, FCN4s]:
    coarse = _fcn8s()
    return coarse, stage_into(coarse, FCN4s(**coarse.kwargs)).eval()


def test_fcn4s_keeps_the_input_size_and_prints_its_structure():
    model = FCN4s(num_classes=3, widths=[2, 2, 2, 2, 2], fc_widths=[2, 2]).eval()
    for h, w in [(1, 1), (37, 50)]:
        with torch.no_grad():
            assert model(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)
    assert "(skip_pool2): Skip(" in repr(model)


def test_fcn4s_crop_offsets_are_those_of_the_caffe_net_it_writes():
    """The offsets the class computed from its parts' maps, against convert.coord_map's own walk
    over the Caffe net fcn_ref.save writes for it (the walk that reproduces Caffe's NetSpec)."""
    model = FCN4s(num_classes=2, widths=[1, 1, 1, 1, 1], fc_widths=[1, 1])
    offsets = model.crop_offsets()
    assert list(offsets) == ["score_pool4c", "score_pool3c", "score_pool2c", "score"]
    assert computed_crop_offsets(caffe_net(model)) == {k: [v, v] for k, v in offsets.items()}
    assert (offsets["score_pool4c"], offsets["score_pool3c"]) == (5, 9)  # FCN-8s's, as Caffe wrote them


def test_fcn4s_new_skip_adds_exact_zeros():
    coarse, fine = _staged()
    x = torch.randn(1, 3, 45, 38)
    pool2 = fine.trunk(x)["pool2"]
    with torch.no_grad():
        skip = fine.skip_pool2
        assert not torch.any(skip.crop(skip.score(pool2), torch.zeros(1, 1, 40, 40)))
        upsampled = torch.randn(1, skip.score.out_channels, 40, 40)
        assert torch.equal(skip(upsampled, pool2), upsampled)


def test_staging_fcn4s_from_fcn8s_copies_every_fcn8s_tensor():
    coarse, fine = _staged()
    theirs, ours = caffe_state_dict(coarse), caffe_state_dict(fine)
    assert set(theirs) - set(ours) == {"upscore8.weight"}  # the final x8 becomes upscore_pool3 and x4
    for key in set(theirs) & set(ours):
        assert torch.equal(ours[key], theirs[key]), key
    assert not layer(fine, "score_pool2").weight.any() and not layer(fine, "score_pool2").bias.any()
