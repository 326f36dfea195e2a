"""Speed/memory settings of the MindSpore inference path (no timings asserted)."""

from __future__ import annotations

import numpy as np

from ipt_ms.inference import CPU_GRAPH_CALL_TILES, MindSporePredictor


class _RecordingNet:
    """Stands in for the network: records the batch of every call, upsamples x2 by repetition."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, x, task_idx):
        import mindspore as ms

        data = x.asnumpy()
        self.calls.append(data.shape[0])
        return ms.Tensor(data.repeat(2, axis=2).repeat(2, axis=3))


def test_graph_mode_on_cpu_calls_the_network_with_few_tiles(tiny_spec):
    """64 tiles per predictor batch still reach the compiled graph at most 8 at a time; the
    short tail is padded to a power of two, and every output row belongs to its input."""
    net = _RecordingNet()
    predictor = MindSporePredictor(net, tiny_spec, "sr_x2", batch_size=64)
    tiles = np.random.default_rng(0).uniform(0, 255, (21, 3, 24, 24)).astype(np.float32)
    out = predictor(tiles)
    assert CPU_GRAPH_CALL_TILES == 8 and net.calls == [8, 8, 8]  # 21 = 8 + 8 + 5 (padded to 8)
    np.testing.assert_array_equal(out, tiles.repeat(2, axis=2).repeat(2, axis=3))


def test_pynative_keeps_the_requested_batch(tiny_spec, pynative):
    net = _RecordingNet()
    predictor = MindSporePredictor(net, tiny_spec, "sr_x2", batch_size=16)
    predictor(np.zeros((21, 3, 24, 24), np.float32))
    assert net.calls == [16, 8]  # PyNative frees intermediates: no reason to split
