"""UNet: shapes in 2D and 3D, real halving of every spatial axis, clear errors, bf16 autocast."""
import pytest
import torch

from ddpm.nn import UNet

torch.set_num_threads(1)


def _run(model: UNet, b: int = 2, size: int = 16, self_cond: bool = False) -> torch.Tensor:
    x = torch.randn(b, model.in_channels, *([size] * model.dims))
    t = torch.randint(0, 1000, (b,))
    sc = torch.randn_like(x) if self_cond else None
    return model(x, t, sc)


CASES = [
    # (channel_mults, res_blocks, attn_res, linear_attn)
    ((1, 2), 1, [], False),          # no attention at all
    ((1, 2), 2, None, False),        # default: full attention at the lowest level
    ((1, 2, 2), 1, [16, 4], False),  # several levels, including the top one
    ((1, 2, 2), 1, [4], True),       # linear attention at the other levels
    ((1,), 1, [16], True),           # a single level: no down/upsampling
]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mults,res_blocks,attn_res,linear", CASES)
def test_output_shape(dims, mults, res_blocks, attn_res, linear):
    model = UNet(dims=dims, in_channels=2, image_size=16, dim=8, channel_mults=mults,
                 res_blocks=res_blocks, attn_res=attn_res, num_head_channels=4, linear_attn=linear)
    y = _run(model)
    assert y.shape == (2, 2, *([16] * dims))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("dims", [2, 3])
def test_attention_placement(dims):
    model = UNet(dims=dims, image_size=16, dim=8, channel_mults=(1, 2, 2), attn_res=[16, 4],
                 num_head_channels=4, linear_attn=True)
    kinds = {type(s.attn).__name__ for s in model.down[0]}
    assert kinds == {"Attention"}                      # side 16 listed: full
    assert {type(s.attn).__name__ for s in model.down[1]} == {"LinearAttention"}  # side 8
    assert type(model.mid.first.attn).__name__ == "Attention"  # side 4 listed
    none = UNet(dims=dims, image_size=16, dim=8, channel_mults=(1, 2), attn_res=[], num_head_channels=4)
    assert all(s.attn is None for steps in none.down for s in steps) and none.mid.first.attn is None


@pytest.mark.parametrize("dims", [2, 3])
def test_self_condition_changes_output_and_defaults_to_zeros(dims):
    torch.manual_seed(0)
    model = UNet(dims=dims, image_size=8, dim=8, channel_mults=(1, 2), num_head_channels=4,
                 self_condition=True).eval()
    x = torch.randn(2, 1, *([8] * dims))
    t = torch.tensor([3, 500])
    assert model.init_conv.in_channels == 2
    y_none = model(x, t)
    y_zero = model(x, t, torch.zeros_like(x))
    y_cond = model(x, t, torch.randn_like(x))
    assert y_none.shape == x.shape
    torch.testing.assert_close(y_none, y_zero)
    assert not torch.allclose(y_none, y_cond)


def test_out_channels_and_timestep_matters():
    torch.manual_seed(0)
    model = UNet(dims=2, in_channels=3, out_channels=6, image_size=8, dim=8, channel_mults=(1, 2),
                 num_head_channels=4).eval()
    x = torch.randn(1, 3, 8, 8)
    y0 = model(x, torch.tensor([0]))
    y1 = model(x, torch.tensor([999.0]))  # float timesteps work too
    assert y0.shape == (1, 6, 8, 8)
    assert not torch.allclose(y0, y1)


def test_3d_downsampling_halves_depth_height_and_width():
    model = UNet(dims=3, image_size=16, dim=8, channel_mults=(1, 2, 4), num_head_channels=4)
    seen = []
    model.mid.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    x = torch.randn(1, 1, 16, 16, 16)
    y = model(x, torch.tensor([10]))
    assert seen == [(1, 32, 4, 4, 4)]  # 16 -> 8 -> 4 on D, H and W alike
    assert y.shape == x.shape


def test_3d_non_cubic_volume_keeps_its_shape():
    model = UNet(dims=3, image_size=16, dim=8, channel_mults=(1, 2), num_head_channels=4)
    x = torch.randn(1, 1, 8, 16, 12)
    assert model(x, torch.tensor([1])).shape == x.shape


def test_image_size_error_names_valid_sizes():
    with pytest.raises(ValueError, match=r"image_size: 30 cannot pass through 3 levels.*divisible by 4.*28 or 32"):
        UNet(dims=3, image_size=30, channel_mults=(1, 2, 4))
    UNet(dims=2, image_size=28, dim=8, channel_mults=(1, 2, 4), num_head_channels=4)  # 28 is fine


def test_attn_res_error_names_valid_sides():
    with pytest.raises(ValueError, match=r"attn_res: 12 is not a feature-map side; the sides are \[64, 32, 16\]"):
        UNet(dims=2, image_size=64, channel_mults=(1, 2, 4), attn_res=[16, 12])
    with pytest.raises(ValueError, match=r"attn_res: 5 is not a feature-map side"):
        UNet(dims=2, image_size=64, channel_mults=(1, 2, 4), attn_res=5)


def test_head_channels_must_divide_attention_channels():
    with pytest.raises(ValueError, match=r"num_head_channels: 24 does not divide the 64 channels at side 8"):
        UNet(dims=2, image_size=16, dim=16, channel_mults=(1, 4), attn_res=[8], num_head_channels=24)
    with pytest.raises(ValueError, match=r"num_head_channels: 24 does not divide the 16 channels at side 16"):
        UNet(dims=2, image_size=16, dim=16, channel_mults=(1, 3), attn_res=[8],
             num_head_channels=24, linear_attn=True)


def test_wrong_input_rank_is_a_clear_error():
    model = UNet(dims=3, image_size=8, dim=8, channel_mults=(1, 2), num_head_channels=4)
    with pytest.raises(ValueError, match=r"expected a 5-D input"):
        model(torch.randn(1, 1, 8, 8), torch.tensor([1]))


@pytest.mark.parametrize("dims", [2, 3])
def test_bf16_autocast_forward_backward_on_cpu(dims):
    torch.manual_seed(0)
    model = UNet(dims=dims, image_size=8, dim=8, channel_mults=(1, 2), attn_res=[4],
                 num_head_channels=4, linear_attn=True, self_condition=True)
    x = torch.randn(2, 1, *([8] * dims))
    t = torch.tensor([1, 900])
    ref = model(x, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, t)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05
    y.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_default_gives_the_same_output_and_gradients(dims):
    torch.manual_seed(0)
    kw = dict(dims=dims, image_size=8, dim=8, channel_mults=(1, 2), num_head_channels=4, linear_attn=True)
    contiguous = UNet(**kw, channels_last=False)
    assert contiguous.memory_format == torch.contiguous_format
    x = torch.randn(2, 1, *([8] * dims))
    t = torch.tensor([5, 50])
    ref = contiguous(x, t)
    ref.square().mean().backward()
    ref_grads = {n: p.grad.clone() for n, p in contiguous.named_parameters()}

    model = UNet(**kw)  # channels-last is the default
    model.load_state_dict(contiguous.state_dict())
    fmt = torch.channels_last_3d if dims == 3 else torch.channels_last
    assert model.memory_format == fmt
    assert model.init_conv.weight.is_contiguous(memory_format=fmt)
    y = model(x, t)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-4)
    y.square().mean().backward()  # through the fused norm node's channels-last backward
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], atol=1e-5, rtol=1e-4, msg=n)
    model.contiguous_format()  # what the trainer does for fp32 on CUDA
    assert model.memory_format == torch.contiguous_format and model.init_conv.weight.is_contiguous()
    torch.testing.assert_close(model(x, t), ref, atol=1e-5, rtol=1e-4)


def test_from_config_reads_unet_dataset_and_dims():
    from ddpm.config import load_config

    cfg = load_config({
        "experiment_path": "/tmp/x", "is_3d": True,
        "model": {"unet": {"dim": 8, "channel_mults": [1, 2, 4], "attn_res": 4, "num_head_channels": 4,
                           "res_blocks": 1, "self_condition": True, "linear_attn": True,
                           "checkpointing": True, "dropout": 0.1}},
        "dataset": {"name": "volume3d", "path": "/tmp/d", "image_size": 16, "image_channels": 2,
                    "batch_size": 1},
    })
    model = UNet.from_config(cfg)
    assert (model.dims, model.in_channels, model.out_channels, model.image_size) == (3, 2, 2, 16)
    assert model.self_condition and model.checkpointing and model.attn_res == [4]
    assert len(model.down) == 3 and len(model.down[0]) == 1
    assert type(model.mid.first.attn).__name__ == "Attention"
    assert type(model.down[0][0].attn).__name__ == "LinearAttention"
    y = model(torch.randn(1, 2, 16, 16, 16), torch.tensor([7]))
    assert y.shape == (1, 2, 16, 16, 16)


def test_runs_on_the_meta_device():
    # bench/unet.py counts FLOPs on the meta device; the norm node must not ask autocast about it
    with torch.device("meta"):
        model = UNet(dims=3, image_size=8, dim=8, channel_mults=(1, 2), num_head_channels=4)
        y = model(torch.randn(1, 1, 8, 8, 8), torch.tensor([3]))
    assert y.shape == (1, 1, 8, 8, 8) and y.device.type == "meta"


@pytest.mark.parametrize("first", ["inference_mode", "no_grad", "train"])
@pytest.mark.parametrize("weights", ["autocast", "bf16"])
def test_bf16_on_cpu_runs_in_any_grad_mode_in_any_order(first, weights):
    """Buffers kept between calls (the CPU attention's score scratch, kept per thread) must not
    be inference tensors: a later training step could never write them again."""
    import itertools
    import threading

    model = UNet(dims=2, image_size=16, dim=16, channel_mults=(1, 2), attn_res=[16, 8], num_head_channels=8)
    if weights == "bf16":
        model = model.to(torch.bfloat16)
    x = torch.randn(2, 1, 16, 16, dtype=torch.bfloat16 if weights == "bf16" else torch.float32)
    t = torch.tensor([3, 500])
    errors = []

    def call(mode: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=weights == "autocast"):
            if mode == "inference_mode":
                with torch.inference_mode():
                    model(x, t)
            elif mode == "no_grad":
                with torch.no_grad():
                    model(x, t)
            else:
                model(x, t).float().square().mean().backward()

    def body() -> None:  # a fresh thread: no score buffers kept from earlier tests
        try:
            for rest in itertools.permutations([m for m in ("inference_mode", "no_grad", "train") if m != first]):
                for mode in (first, *rest, first):
                    call(mode)
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert not errors, errors[0]
