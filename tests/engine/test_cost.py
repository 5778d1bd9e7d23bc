"""trtgen.engine.cost: the work counted from a model config."""

from __future__ import annotations

from trtgen.engine.config import model_preset
from trtgen.engine.cost import decoder_products, flops, postnet_products


def test_the_decoder_step_of_openseq2seq_is_its_two_lstms_and_little_else() -> None:
    c = model_preset("openseq2seq")
    products = decoder_products(c, batch=1, text_len=99)
    lstms = 2 * (256 + 1024 + 1024) * 4096 + 2 * 2048 * 4096  # [prenet, context, h] and [h0, h1] by the 4 gates
    assert (1, 256 + 1024 + 1024, 4096) in products and (1, 2048, 4096) in products
    assert 0.9 < lstms / flops(products) < 1.0
    assert flops(decoder_products(c, batch=32, text_len=99)) == 32 * flops(products)


def test_the_postnet_counts_each_convolution_as_a_product_over_its_kernel() -> None:
    c = model_preset("small")
    products = postnet_products(c, batch=2, frames=10)
    assert products[0] == (20, c.num_mels * c.postnet_kernel, c.postnet_channels[0])
    assert products[-1] == (20, c.magnitude_conv_channels[-1], c.num_freq)
    assert len(products) == len(c.postnet_channels) + 1 + len(c.magnitude_conv_channels) + 1


def test_a_windowed_attention_costs_its_window_whatever_the_text_length() -> None:
    import dataclasses

    from trtgen.engine.config import model_preset

    plain = model_preset("small")
    windowed = dataclasses.replace(plain, attention_window=(1, 3))
    assert flops(decoder_products(windowed, 1, 40)) == flops(decoder_products(windowed, 1, 400)) == flops(decoder_products(plain, 1, 5))
    assert flops(decoder_products(plain, 1, 400)) > flops(decoder_products(plain, 1, 40))
