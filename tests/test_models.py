import pytest
import torch

from sharpkd import models
from sharpkd.models.student import Student, StudentConfig
from sharpkd.models.teacher import Teacher, TeacherConfig


def test_round_trip_state_dict_same_config_and_output():
    for arch, cfg in [("student", {"channels": 24, "blocks": 2}), ("teacher", {"channels": 16, "blocks": 2})]:
        a = models.build(arch, cfg)
        for p in a.parameters():
            torch.nn.init.normal_(p, std=0.05)
        b = models.build(arch, a.config.to_dict())
        b.load_state_dict(a.state_dict())
        assert b.config == a.config
        x = torch.rand(1, 3, 32, 40)
        assert torch.equal(a.eval()(x), b.eval()(x))


def test_fresh_models_start_as_identity():
    x = torch.rand(2, 3, 16, 24)
    for m in (Student(), Teacher(TeacherConfig(channels=16, blocks=2))):
        assert torch.equal(m(x), x)


def test_features_one_per_block_with_declared_channels():
    s = Student(StudentConfig(channels=24, blocks=3))
    out, feats = s.forward_features(torch.rand(1, 3, 16, 16))
    assert len(feats) == 3 and [f.shape[1] for f in feats] == s.feature_channels
    assert feats[0].shape[-2:] == (4, 4)


def test_teacher_costs_far_more_than_student():
    assert models.parameter_count(Teacher()) > 5 * models.parameter_count(Student())
    assert models.parameter_count(Student()) <= 600_000


def test_inference_path_equals_the_training_path():
    """Without autograd the models run in place (faster); they must compute exactly the same."""
    cases = [
        (Student(StudentConfig(channels=24, blocks=3)), ()),
        (Student(StudentConfig(channels=16, blocks=2, conditions=4)), (torch.rand(2, 4),)),
        (Student(StudentConfig(channels=16, blocks=2, negative_slope=0.1)), ()),
        (Teacher(TeacherConfig(channels=16, blocks=2)), ()),
    ]
    x = torch.rand(2, 3, 24, 32)
    for s, cond in cases:
        for p in s.parameters():
            torch.nn.init.normal_(p, std=0.05)
        with torch.no_grad():
            fast = s(x, *cond)
        slow = s(x, *cond)  # autograd on: the out-of-place path that training and distillation use
        assert slow.requires_grad and not fast.requires_grad
        assert torch.allclose(fast, slow.detach(), atol=1e-6)
        assert not torch.allclose(fast, x, atol=1e-3)  # the weights do change the image


def test_leaky_students_pass_what_plain_relus_drop():
    """negative_slope > 0: the same weights give another output (negative activations pass, scaled),
    and a head whose pre-activations are all negative still passes a gradient."""
    torch.manual_seed(0)
    plain, leaky = Student(StudentConfig(8, 1)), Student(StudentConfig(8, 1, negative_slope=0.1))
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.1)
    leaky.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(plain(x), leaky(x))
        for m in (plain, leaky):
            m.head.bias.fill_(-100.0)  # every head unit below zero: "dead" for plain ReLUs
    for m in (plain, leaky):
        m(x).sum().backward()
    assert plain.head.weight.grad.abs().max() == 0 and leaky.head.weight.grad.abs().max() > 0


def test_a_narrowed_student_computes_the_wide_one_with_the_dropped_channels_zeroed():
    from sharpkd.models.student import narrowed

    torch.manual_seed(0)
    wide = Student(StudentConfig(channels=8, blocks=3, conditions=4))
    torch.nn.init.normal_(wide.tail.weight, std=0.1)
    stream, inner = [0, 2, 3, 5, 6, 7], [[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 6, 7], [0, 2, 4, 5, 6, 7]]
    narrow = narrowed(wide, stream, inner)
    zeroed = Student(wide.config)
    zeroed.load_state_dict(wide.state_dict())
    with torch.no_grad():
        for c in set(range(8)) - set(stream):  # a stream channel never written stays zero
            zeroed.head.weight[c] = 0
            zeroed.head.bias[c] = 0
            for block in zeroed.body:
                block.mix.weight[c] = 0
                block.mix.bias[c] = 0
        for block, keep in zip(zeroed.body, inner):  # an inner channel whose conv is zero is zero after the ReLU
            for c in set(range(8)) - set(keep):
                block.spatial.weight[c] = 0
                block.spatial.bias[c] = 0
    x, cond = torch.rand(2, 3, 32, 32), torch.rand(2, 4)
    with torch.no_grad():
        assert narrow.config.channels == 6 and narrow.config.conditions == 4
        assert torch.allclose(narrow(x, cond), zeroed(x, cond), atol=1e-6)
        assert (wide(x, cond) - zeroed(x, cond)).abs().max() > 1e-3  # the dropped channels did matter
    with pytest.raises(ValueError):
        narrowed(wide, stream, inner[:2])
