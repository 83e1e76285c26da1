"""Networks: backbones, necks, heads and the assembled Siamese networks.

Module attribute names reproduce the reference checkpoints' state_dict keys exactly.
"""
