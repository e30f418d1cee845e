import roboflow_storage
from roboflow_storage import errors


def test_public_names_are_sorted_and_exported() -> None:
    for module in (roboflow_storage, errors):
        assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
        assert all(hasattr(module, name) for name in module.__all__)
