"""The VQ autoencoder: nearest-code lookup, the losses, the straight-through gradient, perplexity,
dead-code restarts, and decode quantizing first."""

from __future__ import annotations

import math

import torch

from hwaksan.nets.autoencoder import AutoencoderConfig, VectorQuantizer, VQModel


def _quantizer(K: int = 16, d: int = 3) -> VectorQuantizer:
    torch.manual_seed(0)
    q = VectorQuantizer(K, d, commitment_cost=0.25)
    q.embedding.weight.data.normal_()
    return q


def test_quantization_picks_the_nearest_code_and_the_losses_match_by_hand():
    q = _quantizer()
    z = torch.randn(2, 3, 4, 5)
    out = q(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = torch.cdist(flat, q.embedding.weight).argmin(1)
    assert torch.equal(out.indices.flatten(), brute)
    codes = q.embedding.weight[brute].view(2, 4, 5, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.z_q, codes)  # the forward value is the codebook vector
    mse = (codes - z).square().mean()
    torch.testing.assert_close(out.loss, mse + 0.25 * mse)


def test_straight_through_gradient_is_the_identity():
    q = _quantizer()
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    upstream = torch.randn(2, 3, 4, 4)
    (q(z).z_q * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)


def test_the_encoder_gets_the_decoders_gradient_as_if_quantization_were_identity():
    torch.manual_seed(0)
    config = AutoencoderConfig(resolution=16, channels=(8, 8, 8), norm_groups=4, num_embeddings=8)
    model = VQModel(config).eval()  # eval: the moving-average codebook stays put between passes
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    recon, _ = model(x)
    recon.square().sum().backward()  # the reconstruction path only (no VQ loss)
    got = [p.grad.clone() for p in model.encoder.parameters()]
    # by hand: dL/dz_q from the decoder alone, pushed through the encoder unchanged
    model.zero_grad()
    z = model.encoder(x)
    z_q = model.quantize(z).z_q.detach().requires_grad_()
    (dz,) = torch.autograd.grad(model.decoder(z_q).square().sum(), z_q)
    want = torch.autograd.grad(z, list(model.encoder.parameters()), grad_outputs=dz)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert any(g.abs().sum() > 0 for g in got)


def test_perplexity_counts_the_codes_in_use():
    q = VectorQuantizer(8, 2)
    q.embedding.weight.data = torch.eye(8, 2) * 0 + torch.arange(8.0)[:, None]  # codes at 0..7
    every_code = torch.arange(8.0)[None, :, None, None].expand(1, 8, 1, 1).repeat(1, 1, 1, 2)
    z = every_code.permute(0, 3, 1, 2).reshape(1, 2, 8, 1)  # 8 vectors, one per code
    torch.testing.assert_close(q(z).perplexity, torch.tensor(8.0))
    torch.testing.assert_close(q(torch.zeros(1, 2, 8, 1)).perplexity, torch.tensor(1.0))
    half = torch.cat([torch.zeros(1, 2, 4, 1), torch.full((1, 2, 4, 1), 3.0)], 2)
    torch.testing.assert_close(q(half).perplexity, torch.tensor(2.0))
    assert math.isclose(float(q(half).perplexity.log()), math.log(2), rel_tol=1e-5)


def test_dead_codes_restart_on_encoder_vectors_and_live_ones_stay():
    q = _quantizer(K=8, d=3)
    before = q.embedding.weight.detach().clone()
    q.usage.fill_(1 / 8)
    q.usage[[2, 5]] = 0.0  # two codes nobody picked
    z = torch.randn(2, 3, 4, 4) + 10.0  # encoder vectors far from every code
    moved = q.restart_dead_codes(z, threshold=0.03, generator=torch.Generator().manual_seed(0))
    assert moved == 2
    after = q.embedding.weight.detach()
    live = [0, 1, 3, 4, 6, 7]
    assert torch.equal(after[live], before[live])
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    for k in (2, 5):  # each restarted code sits (within its 1% jitter) on one encoder vector
        assert torch.cdist(after[k : k + 1], flat).min() < 0.1
    assert torch.all(q.usage[[2, 5]] == 1 / 8)
    assert q.restart_dead_codes(z, threshold=0.03) == 0  # nothing dead any more


def test_usage_tracks_the_picked_codes_while_training_only():
    q = _quantizer(K=4, d=2)
    q.embedding.weight.data = torch.tensor([[0.0, 0], [5, 5], [-5, 5], [5, -5]])
    z = torch.zeros(1, 2, 3, 3)  # every vector picks code 0
    q.eval()
    q(z)
    assert torch.all(q.usage == 0)  # evaluation leaves it alone
    q.train()
    for _ in range(200):
        q(z)
    assert q.usage[0] > 0.99 and torch.all(q.usage[1:] == 0)


def test_decode_quantizes_first():
    torch.manual_seed(0)
    config = AutoencoderConfig(resolution=16, channels=(8, 8, 8), norm_groups=4, num_embeddings=8)
    model = VQModel(config).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = model.encode_latents(x)
        q = model.quantize(z)
        from_indices = model.decode_indices(q.indices)
        torch.testing.assert_close(model.decode(z), from_indices)
        torch.testing.assert_close(model(x)[0], from_indices)
        assert not torch.allclose(model.decoder(z), from_indices)  # unquantized would differ


def test_moving_average_codebook_follows_its_assigned_vectors():
    torch.manual_seed(0)
    q = VectorQuantizer(4, 2, commitment_cost=0.25, decay=0.9)
    q.embedding.weight.data = torch.tensor([[0.0, 0], [10, 10], [-10, 10], [10, -10]])
    z = torch.tensor([[1.0, 1.0], [2.0, 0.0], [9.0, 11.0]]).T.reshape(1, 2, 3, 1)
    out = q(z)  # vectors 0 and 1 pick code 0, vector 2 picks code 1
    assert out.indices.flatten().tolist() == [0, 0, 1]
    w = q.embedding.weight
    torch.testing.assert_close(w[0], torch.tensor([1.5, 0.5]))  # the mean of its vectors
    torch.testing.assert_close(w[1], torch.tensor([9.0, 11.0]))
    torch.testing.assert_close(w[2:], torch.tensor([[-10.0, 10], [10, -10]]))  # unpicked: kept
    before = torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]).T.reshape(1, 2, 3, 1)
    torch.testing.assert_close(out.loss, 0.25 * (z - before).square().mean())  # commitment only
    assert not w.requires_grad  # no gradient, no optimizer step on the codebook
    q.usage.fill_(1.0)
    q.usage[3] = 0
    q.restart_dead_codes(z, threshold=0.03)
    assert q.cluster_size[3] == 0 and torch.cdist(w[3:4], z.reshape(2, 3).T).min() < 0.2
