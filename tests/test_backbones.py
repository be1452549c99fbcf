"""Frame backbones: torchvision/OpenAI weight names, numerics against transformers, errors."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    ResNetConfig,
    ResNetModel,
)

from mcsan.extract.backbones import (
    BACKBONES,
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipVitSpec,
    FrameBackbone,
    ImageTransform,
    build_backbone,
    clip_transform,
)

# one thread: on the shared 2-core machine this is faster and steadier (see conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")

BN_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_resnet_keys(blocks: tuple[int, ...]) -> list[str]:
    """State-dict keys of torchvision.models.resnet.ResNet with Bottleneck blocks, in order."""
    keys = ["conv1.weight", *(f"bn1.{entry}" for entry in BN_ENTRIES)]
    for stage, count in enumerate(blocks, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for conv in (1, 2, 3):
                keys.append(f"{prefix}.conv{conv}.weight")
                keys += [f"{prefix}.bn{conv}.{entry}" for entry in BN_ENTRIES]
            if block == 0:  # every first block changes the channel count
                keys.append(f"{prefix}.downsample.0.weight")
                keys += [f"{prefix}.downsample.1.{entry}" for entry in BN_ENTRIES]
    return [*keys, "fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def resnet50() -> FrameBackbone:
    torch.manual_seed(0)
    return build_backbone("resnet50", None, random_init=True)


@pytest.fixture(scope="module")
def resnet50_pth(resnet50, tmp_path_factory) -> Iterator[Path]:
    """The module's ResNet-50 as a torchvision-style .pth file, written once (100 MB), removed
    after the module."""
    path = tmp_path_factory.mktemp("resnet50") / "resnet50-0676ba61.pth"
    torch.save({key: value.contiguous() for key, value in resnet50.state_dict().items()}, path)
    yield path
    path.unlink()


@pytest.mark.parametrize(
    ("name", "blocks"),
    [("resnet50", (3, 4, 6, 3)), ("resnet101", (3, 4, 23, 3)), ("resnet152", (3, 8, 36, 3))],
)
def test_resnet_state_dict_is_torchvisions(name, blocks, resnet50):
    model = resnet50 if name == "resnet50" else build_backbone(name, None, random_init=True)
    state = model.state_dict()
    assert list(state) == torchvision_resnet_keys(blocks)
    assert model.output_dim == 2048 and model.name == name
    if name == "resnet50":
        assert len(state) == 320
        expected_shapes = {
            "conv1.weight": (64, 3, 7, 7),
            "layer1.0.conv1.weight": (64, 64, 1, 1),
            "layer1.0.conv2.weight": (64, 64, 3, 3),
            "layer1.0.downsample.0.weight": (256, 64, 1, 1),
            "layer1.0.downsample.1.weight": (256,),
            "layer2.0.conv1.weight": (128, 256, 1, 1),
            "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
            "layer4.2.bn3.running_var": (2048,),
            "fc.weight": (1000, 2048),
        }
        for key, shape in expected_shapes.items():
            assert tuple(state[key].shape) == shape, key


def hf_resnet_to_torchvision(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename transformers' ResNetModel weights to torchvision's names."""
    renamed = {}
    for key, value in hf_state.items():
        parts = key.split(".")
        if parts[:2] == ["embedder", "embedder"]:
            module = {"convolution": "conv1", "normalization": "bn1"}[parts[2]]
            renamed[".".join([module, *parts[3:]])] = value
            continue
        # encoder.stages.S.layers.B.(shortcut.KIND | layer.I.KIND).ENTRY
        stage, block = int(parts[2]), int(parts[4])
        prefix = f"layer{stage + 1}.{block}"
        if parts[5] == "shortcut":
            index = {"convolution": "0", "normalization": "1"}[parts[6]]
            renamed[f"{prefix}.downsample.{index}.{parts[7]}"] = value
        else:
            conv = int(parts[6]) + 1
            module = {"convolution": f"conv{conv}", "normalization": f"bn{conv}"}[parts[7]]
            renamed[f"{prefix}.{module}.{parts[8]}"] = value
    return renamed


def randomise_batchnorm(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics so that eval-mode BN is really tested."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(channels))
            module.running_var.copy_(torch.rand(channels) + 0.5)
            module.weight.data.copy_(torch.rand(channels) + 0.5)
            module.bias.data.copy_(0.1 * torch.randn(channels))


def test_resnet50_matches_transformers_resnet(tmp_path):
    # transformers' ResNet-50 (downsample_in_bottleneck=False) is the same v1.5 network as
    # torchvision's, with other module names: an independent numeric reference
    torch.manual_seed(1)
    reference = ResNetModel(ResNetConfig(depths=[3, 4, 6, 3], layer_type="bottleneck")).eval()
    with torch.no_grad():
        randomise_batchnorm(reference)
    weights = tmp_path / "resnet50-from-hf.pth"
    torch.save(hf_resnet_to_torchvision(reference.state_dict()), weights)
    ours = build_backbone("resnet50", weights)

    images = torch.randn(2, 3, 64, 64)  # (N, 3, S, S)
    with torch.no_grad():
        expected = reference(pixel_values=images).pooler_output.flatten(1)  # (2, 2048)
        got = ours(images)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())

    # the comparison can tell the stride placement apart: ResNet v1 (stride in the first
    # 1x1 convolution) with the very same weights gives other features
    v1 = ResNetModel(ResNetConfig(depths=[3, 4, 6, 3], downsample_in_bottleneck=True)).eval()
    v1.load_state_dict(reference.state_dict())
    with torch.no_grad():
        v1_features = v1(pixel_values=images).pooler_output.flatten(1)
    assert not torch.allclose(v1_features, got, rtol=1e-2, atol=1e-2)


def test_resnet_weights_round_trip_through_pth_and_safetensors(resnet50, resnet50_pth, tmp_path):
    state = {key: value.contiguous() for key, value in resnet50.state_dict().items()}
    save_file(state, tmp_path / "resnet50.safetensors")
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = resnet50(images)  # (2, 2048)
        for path in (tmp_path / "resnet50.safetensors", resnet50_pth):
            loaded = build_backbone("resnet50", str(path))
            assert not loaded.training
            for key, value in loaded.state_dict().items():
                assert torch.equal(value, state[key]), key
            torch.testing.assert_close(loaded(images), expected, rtol=0, atol=0)


def test_resnet_is_in_eval_mode_and_per_image(resnet50):
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        batch = resnet50(images)  # (3, 2048)
        single = resnet50(images[1:2])  # (1, 2048)
    assert not resnet50.training
    assert all(not parameter.requires_grad for parameter in resnet50.parameters())
    # batch statistics (train-mode BN) would change every feature; kernels differ by ~1e-6
    scale = single.abs().max().item()
    torch.testing.assert_close(batch[1:2], single, rtol=1e-4, atol=1e-4 * scale)


def test_random_init_follows_the_torch_seed(resnet50):
    torch.manual_seed(0)  # the seed of the module fixture
    again = build_backbone("resnet50", None, random_init=True)
    torch.manual_seed(5)
    other = build_backbone("resnet50", None, random_init=True)
    assert torch.equal(again.conv1.weight, resnet50.conv1.weight)
    assert not torch.equal(other.conv1.weight, resnet50.conv1.weight)


# --------------------------------------------------------------------------- CLIP

TINY_CLIP = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=2,
    patch_size=16,
    image_size=64,
    projection_dim=32,
    hidden_act="quick_gelu",
)


@pytest.fixture(scope="module")
def hf_clip() -> CLIPVisionModelWithProjection:
    torch.manual_seed(2)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).eval()
    with torch.no_grad():  # move layer norms and biases off their 1 / 0 initial values
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def hf_clip_to_openai(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert transformers' CLIP vision weights to OpenAI's ``visual.*`` layout."""
    vision = {
        key.removeprefix("vision_model."): value
        for key, value in hf_state.items()
        if key.startswith("vision_model.")
    }
    state = {
        "visual.conv1.weight": vision["embeddings.patch_embedding.weight"],
        "visual.class_embedding": vision["embeddings.class_embedding"],
        "visual.positional_embedding": vision["embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": vision["pre_layrnorm.weight"],
        "visual.ln_pre.bias": vision["pre_layrnorm.bias"],
        "visual.ln_post.weight": vision["post_layernorm.weight"],
        "visual.ln_post.bias": vision["post_layernorm.bias"],
        "visual.proj": hf_state["visual_projection.weight"].t().contiguous(),  # (width, out)
    }
    layers = {int(key.split(".")[2]) for key in vision if key.startswith("encoder.layers.")}
    for index in sorted(layers):
        hf = f"encoder.layers.{index}."
        openai = f"visual.transformer.resblocks.{index}."
        for entry in ("weight", "bias"):
            state[openai + f"attn.in_proj_{entry}"] = torch.cat(
                [vision[hf + f"self_attn.{proj}_proj.{entry}"] for proj in ("q", "k", "v")]
            )
            state[openai + f"attn.out_proj.{entry}"] = vision[hf + f"self_attn.out_proj.{entry}"]
            state[openai + f"ln_1.{entry}"] = vision[hf + f"layer_norm1.{entry}"]
            state[openai + f"ln_2.{entry}"] = vision[hf + f"layer_norm2.{entry}"]
            state[openai + f"mlp.c_fc.{entry}"] = vision[hf + f"mlp.fc1.{entry}"]
            state[openai + f"mlp.c_proj.{entry}"] = vision[hf + f"mlp.fc2.{entry}"]
    return state


TEXT_TOWER = {  # a full CLIP file also holds these; the image backbone must ignore them
    "token_embedding.weight": torch.randn(10, 16),
    "text_projection": torch.randn(16, 32),
    "logit_scale": torch.tensor(4.6),
    "input_resolution": torch.tensor(64),
}


class ParameterArchive(nn.Module):
    """A module whose state dict is exactly ``state``, to be saved as TorchScript."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for key, value in state.items():
            *path, leaf = key.split(".")
            module: nn.Module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, nn.Module())
                module = module._modules[part]
            module.register_buffer(leaf, value.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_clip_file(state: dict[str, torch.Tensor], kind: str, directory: Path) -> Path:
    full = {**state, **TEXT_TOWER}
    if kind == "state-dict":
        path = directory / "tiny-clip.pt"
        torch.save(full, path)
    elif kind == "safetensors":
        path = directory / "tiny-clip.safetensors"
        save_file(full, path)
    elif kind == "open_clip":
        path = directory / "epoch_3.pt"
        wrapped = {f"module.{key}": value for key, value in full.items()}
        torch.save({"epoch": 3, "name": "tiny", "state_dict": wrapped}, path)
    else:  # an OpenAI-style TorchScript archive, fp16 like the official files
        path = directory / "ViT-tiny.pt"
        half = {key: v.half() if v.is_floating_point() else v for key, v in full.items()}
        with warnings.catch_warnings():  # TorchScript is deprecated; OpenAI's files use it
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(ParameterArchive(half)).save(str(path))
    return path


@pytest.mark.parametrize("kind", ["state-dict", "safetensors", "open_clip", "torchscript"])
def test_clip_vit_matches_transformers_clip(hf_clip, kind, tmp_path):
    state = hf_clip_to_openai(hf_clip.state_dict())
    reference = hf_clip
    if kind == "torchscript":  # the archive holds fp16 weights: compare with rounded ones
        reference = copy.deepcopy(hf_clip)
        with torch.no_grad():
            for parameter in reference.parameters():
                parameter.copy_(parameter.half().float())
    ours = build_backbone("clip-vit", write_clip_file(state, kind, tmp_path))

    assert ours.spec == ClipVitSpec(
        width=128, layers=2, patch_size=16, resolution=64, output_dim=32
    )
    assert ours.spec.heads == 2 and ours.output_dim == 32
    assert ours.transform == clip_transform(64)
    images = torch.randn(3, 3, 64, 64)  # (N, 3, resolution, resolution)
    with torch.no_grad():
        expected = reference(pixel_values=images).image_embeds  # (3, 32)
        got = ours(images)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_clip_embed_frames_and_input_checks(hf_clip, tmp_path):
    path = write_clip_file(hf_clip_to_openai(hf_clip.state_dict()), "state-dict", tmp_path)
    ours = build_backbone("clip-vit", path)
    frames = torch.randint(0, 256, (2, 48, 80, 3), dtype=torch.uint8)  # (N, H, W, 3)
    features = ours.embed_frames(frames)
    assert features.shape == (2, 32)
    with torch.no_grad():
        torch.testing.assert_close(features, ours(ours.transform(frames)))
    with pytest.raises(ValueError, match=r"takes \(N, 3, 64, 64\) images"):
        ours(torch.randn(1, 3, 32, 32))


def test_named_clip_variant_must_match_the_file(hf_clip, tmp_path):
    path = write_clip_file(hf_clip_to_openai(hf_clip.state_dict()), "state-dict", tmp_path)
    with pytest.raises(ValueError, match="width 128, 2 layers, patch 16") as error:
        build_backbone("clip-vit-b-32", path)
    assert "width 768, 12 layers, patch 32" in str(error.value)
    assert "--backbone clip-vit" in str(error.value) and str(path) in str(error.value)


def test_named_clip_variants_have_openai_shapes():
    torch.manual_seed(0)
    model = build_backbone("clip-vit-b-32", None, random_init=True)
    state = model.state_dict()
    assert model.output_dim == 512 and model.transform == clip_transform(224)
    assert tuple(state["visual.conv1.weight"].shape) == (768, 3, 32, 32)
    assert tuple(state["visual.positional_embedding"].shape) == (50, 768)
    assert tuple(state["visual.transformer.resblocks.11.attn.in_proj_weight"].shape) == (
        2304,
        768,
    )
    assert tuple(state["visual.transformer.resblocks.11.mlp.c_fc.weight"].shape) == (3072, 768)
    assert tuple(state["visual.proj"].shape) == (768, 512)
    assert model.visual.transformer.resblocks[0].attn.num_heads == 12
    assert len(state) == 8 + 12 * 12


# --------------------------------------------------------------------------- errors


def test_missing_weights_say_which_file_and_how():
    with pytest.raises(FileNotFoundError) as error:
        build_backbone("resnet152", None)
    message = str(error.value)
    assert "resnet152-394f9c45.pth" in message and "--weights PATH" in message
    assert "https://download.pytorch.org/models/" in message


def test_nonexistent_weights_path(tmp_path):
    path = tmp_path / "nowhere" / "ViT-B-32.pt"
    with pytest.raises(FileNotFoundError) as error:
        build_backbone("clip-vit-b-32", path)
    message = str(error.value)
    assert str(path) in message and "does not exist" in message
    assert "ViT-B-32.pt" in message and "openaipublic" in message and "--weights" in message


def test_wrong_keys_are_listed_with_the_file(resnet50, tmp_path):
    state = dict(resnet50.state_dict())
    state["layer1.0.convX.weight"] = state.pop("layer1.0.conv1.weight")
    state["layer4.2.bn3.weight"] = torch.ones(7)
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as error:
        build_backbone("resnet50", path)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys: layer1.0.conv1.weight" in message
    assert "unexpected keys: layer1.0.convX.weight" in message
    assert "layer4.2.bn3.weight (7,) vs (2048,)" in message


def test_clip_file_given_to_a_resnet_is_refused(hf_clip, tmp_path):
    path = write_clip_file(hf_clip_to_openai(hf_clip.state_dict()), "state-dict", tmp_path)
    with pytest.raises(ValueError, match=r"unexpected keys: .*visual\.") as error:
        build_backbone("resnet50", path)
    assert "missing keys: bn1.bias" in str(error.value)


def test_resnet_file_given_to_clip_is_refused(resnet50_pth):
    with pytest.raises(ValueError, match="holds no CLIP ViT image tower") as error:
        build_backbone("clip-vit", resnet50_pth)
    assert "missing visual.conv1.weight" in str(error.value) and "bn1.bias" in str(error.value)


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot read weights file .*broken.pth"):
        build_backbone("resnet50", path)


def test_bad_names_and_arguments(tmp_path):
    assert set(BACKBONES) >= {"resnet50", "resnet152", "clip-vit-b-32", "clip-vit"}
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'.*resnet152"):
        build_backbone("vgg16", None, random_init=True)
    with pytest.raises(ValueError, match="not both"):
        build_backbone("resnet50", tmp_path / "x.pth", random_init=True)
    with pytest.raises(ValueError, match="reads its architecture from the weights file"):
        build_backbone("clip-vit", None, random_init=True)


# --------------------------------------------------------------------------- transform

RESNET_STYLE = ImageTransform(
    size=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear"
)
CLIP_STYLE = clip_transform(224)


@pytest.mark.parametrize("transform", [RESNET_STYLE, CLIP_STYLE])
def test_transform_shapes_odd_sizes_and_determinism(transform):
    torch.manual_seed(3)
    for height, width in [(37, 53), (53, 37), (1, 1), (240, 320)]:
        frames = torch.randint(0, 256, (2, height, width, 3), dtype=torch.uint8)
        images = transform(frames)
        assert images.shape == (2, 3, 224, 224) and images.dtype == torch.float32
        assert torch.equal(images, transform(frames))
        assert torch.isfinite(images).all()
    assert transform.resized_shape(37, 53) == (transform.resize, int(transform.resize * 53 / 37))
    assert transform.resized_shape(53, 37) == (int(transform.resize * 53 / 37), transform.resize)


@pytest.mark.parametrize(
    ("transform", "mean", "std"),
    [(RESNET_STYLE, IMAGENET_MEAN, IMAGENET_STD), (CLIP_STYLE, CLIP_MEAN, CLIP_STD)],
)
def test_transform_normalises_a_flat_colour(transform, mean, std):
    colour = (255, 0, 128)
    frames = torch.tensor(colour, dtype=torch.uint8).expand(1, 31, 45, 3)  # (1, H, W, 3)
    images = transform(frames)
    for channel in range(3):
        expected = (colour[channel] / 255 - mean[channel]) / std[channel]
        torch.testing.assert_close(
            images[0, channel], torch.full((224, 224), expected), rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_transform_crops_the_centre(interpolation):
    # the shorter side is already 256, so the resize keeps every pixel and only the crop acts
    transform = ImageTransform(
        size=224,
        resize=256,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        interpolation=interpolation,
    )
    frames = torch.randint(0, 256, (1, 256, 321, 3), dtype=torch.uint8)
    top, left = 16, int(round((321 - 224) / 2))
    crop = frames[0, top : top + 224, left : left + 224].permute(2, 0, 1).float()  # (3, S, S)
    torch.testing.assert_close(transform(frames)[0], (crop / 255 - 0.5) / 0.25, rtol=0, atol=1e-4)


@pytest.mark.parametrize("shape", [(256, 341), (341, 256)])
def test_transform_skips_resampling_frames_already_at_the_resize_size(shape):
    """Frames the decoder already scaled are only cropped; the result equals resampling them
    at their own size (an identity resize), which is what the general path does."""
    frames = torch.randint(0, 256, (3, *shape, 3), dtype=torch.uint8)
    resampled = torch.nn.functional.interpolate(
        frames.permute(0, 3, 1, 2).float(), size=shape, mode="bilinear", antialias=True
    )  # (3, 3, H, W)
    top, left = (int(round((side - 224) / 2.0)) for side in shape)  # torchvision CenterCrop
    crop = resampled[:, :, top : top + 224, left : left + 224]
    mean = torch.tensor(RESNET_STYLE.mean).view(1, 3, 1, 1)
    std = torch.tensor(RESNET_STYLE.std).view(1, 3, 1, 1)
    expected = (crop / 255 - mean) / std
    torch.testing.assert_close(RESNET_STYLE(frames), expected, rtol=0, atol=1e-5)


def test_transform_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        RESNET_STYLE(torch.zeros(1, 8, 8, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        RESNET_STYLE(torch.zeros(1, 8, 8, 3))
    with pytest.raises(ValueError, match="empty side"):
        RESNET_STYLE(torch.zeros(1, 0, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="interpolation"):
        ImageTransform(size=8, resize=8, mean=(0, 0, 0), std=(1, 1, 1), interpolation="nearest")
    with pytest.raises(ValueError, match="at most the resize"):
        ImageTransform(size=9, resize=8, mean=(0, 0, 0), std=(1, 1, 1), interpolation="bilinear")


def test_resnet_embed_frames(resnet50):
    frames = torch.randint(0, 256, (2, 30, 41, 3), dtype=torch.uint8)  # (N, H, W, 3)
    features = resnet50.embed_frames(frames)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and (features >= 0).all()  # pooled ReLU outputs
    with torch.no_grad():
        torch.testing.assert_close(features, resnet50(RESNET_STYLE(frames)))
