#include <seg/augment.h>
#include <seg/augment_pipeline.h>
#include <seg/error.h>
#include <seg/recipe.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace {

at::Tensor identity_theta(int64_t batch) {
  return torch::eye(2, 3).unsqueeze(0).repeat({batch, 1, 1});
}

// Images with structure (so a warp changes them) and labels 0..5 in blocks.
std::pair<at::Tensor, at::Tensor> sample_batch(int64_t batch, int64_t h, int64_t w) {
  auto ys = torch::arange(h, torch::kFloat).view({1, 1, h, 1});
  auto xs = torch::arange(w, torch::kFloat).view({1, 1, 1, w});
  auto images = (torch::sin(ys * 0.3) * torch::cos(xs * 0.2) * 100 + 128).repeat({batch, 1, 1, 1});
  images = images + torch::arange(batch, torch::kFloat).view({batch, 1, 1, 1});
  auto labels = ((ys / 8).floor() + (xs / 8).floor()).remainder(6).to(torch::kByte).squeeze(1).repeat({batch, 1, 1});
  return {images, labels};
}

}  // namespace

TEST(Augment, IdentityTransformReturnsTheInputExactly) {
  for (auto [h, w] : {std::pair<int64_t, int64_t>{256, 256}, {37, 53}}) {
    auto [images, labels] = sample_batch(3, h, w);
    auto [out_images, out_labels] = seg::apply_affine(images, labels, identity_theta(3));
    EXPECT_TRUE(torch::equal(out_images, images)) << h << "x" << w << " max diff "
        << (out_images - images).abs().max().item<double>();
    EXPECT_TRUE(torch::equal(out_labels, labels)) << h << "x" << w;
    EXPECT_EQ(out_labels.scalar_type(), torch::kByte);
  }
}

TEST(Augment, TranslationMovesByWholePixelsInTheNotebookConvention) {
  // With align_corners=false one pixel is 2/W in normalised units; theta maps output to input
  // coordinates, so tx = +3 pixels makes output column j show input column j + 3.
  auto [images, labels] = sample_batch(1, 16, 20);
  auto theta = identity_theta(1);
  theta[0][0][2] = 3 * 2.0 / 20;
  auto [out_images, out_labels] = seg::apply_affine(images, labels, theta);
  EXPECT_TRUE(torch::equal(out_labels.slice(2, 0, 17), labels.slice(2, 3, 20)));
  EXPECT_TRUE(out_labels.slice(2, 17, 20).eq(0).all().item<bool>());  // outside: background
  EXPECT_TRUE(torch::allclose(out_images.slice(3, 0, 17), images.slice(3, 3, 20), 0, 1e-3));
  EXPECT_TRUE(out_images.slice(3, 17, 20).eq(0).all().item<bool>());
}

TEST(Augment, LabelsStayIntegerAndWithinTheClassSet) {
  auto gen = seg::make_seeded_generator(7);
  for (auto dtype : {torch::kByte, torch::kLong}) {
    auto [images, labels] = sample_batch(4, 64, 48);
    labels = labels.to(dtype);
    auto [out_images, out_labels] = seg::random_affine(images, labels, 0.3, gen);
    EXPECT_EQ(out_labels.scalar_type(), dtype);
    EXPECT_EQ(out_labels.sizes(), labels.sizes());
    EXPECT_EQ(out_images.sizes(), images.sizes());
    EXPECT_EQ(out_images.scalar_type(), torch::kFloat);
    auto values = std::get<0>(at::_unique(out_labels));
    EXPECT_TRUE(values.ge(0).logical_and(values.le(5)).all().item<bool>()) << values;
    EXPECT_FALSE(torch::equal(out_labels, labels));  // a scale of 0.3 moves things
  }
}

TEST(Augment, ThetaIsIdentityPlusScaledNormalNoise) {
  auto gen = seg::make_seeded_generator(1);
  auto theta = seg::random_affine_theta(20000, 0.1, gen, torch::kCPU);
  ASSERT_EQ(theta.sizes(), (c10::IntArrayRef{20000, 2, 3}));
  auto noise = theta - torch::eye(2, 3).unsqueeze(0);
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.002);
  EXPECT_NEAR(noise.std().item<double>(), 0.1, 0.002);
  auto gen0 = seg::make_seeded_generator(1);
  EXPECT_TRUE(torch::equal(seg::random_affine_theta(3, 0.0, gen0, torch::kCPU), identity_theta(3)));
}

TEST(Augment, ZoomScalesTheLinearPartLogUniformlyAndKeepsTheNoiseDraws) {
  const int64_t n = 20000;
  auto plain_gen = seg::make_seeded_generator(4), zoom_gen = seg::make_seeded_generator(4);
  const auto plain = seg::random_affine_theta(n, 0.0, plain_gen, torch::kCPU);
  const auto zoomed = seg::random_affine_theta(n, 0.0, zoom_gen, torch::kCPU, 0.5);
  // With no noise each matrix is factor * I, no shear, no shift.
  const auto factor = zoomed.select(1, 0).select(1, 0);
  EXPECT_TRUE(torch::allclose(zoomed.select(1, 1).select(1, 1), factor));
  EXPECT_EQ(zoomed.select(1, 0).select(1, 1).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(zoomed.select(2, 2).abs().max().item<float>(), 0.0f);
  // log(factor) uniform on [-log 1.5, log 1.5]: its bounds, mean 0 and variance (log 1.5)^2 / 3.
  const auto log_factor = factor.log();
  const double bound = std::log(1.5);
  EXPECT_LE(log_factor.abs().max().item<double>(), bound + 1e-6);
  EXPECT_GT(log_factor.abs().max().item<double>(), 0.99 * bound);
  EXPECT_NEAR(log_factor.mean().item<double>(), 0.0, 0.005);
  EXPECT_NEAR(log_factor.var().item<double>(), bound * bound / 3, 0.003);
  EXPECT_TRUE(torch::equal(plain, identity_theta(n)));
  // The zoom is drawn after the affine noise: the noise of a seed is the same with or without it.
  auto a = seg::make_seeded_generator(9), b = seg::make_seeded_generator(9);
  const auto noise_only = seg::random_affine_theta(4, 0.1, a, torch::kCPU);
  const auto with_zoom = seg::random_affine_theta(4, 0.1, b, torch::kCPU, 0.3);
  const auto ratio = with_zoom.narrow(2, 0, 2) / noise_only.narrow(2, 0, 2);
  EXPECT_TRUE(torch::allclose(ratio, ratio.select(1, 0).select(1, 0).view({4, 1, 1}).expand({4, 2, 2}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(with_zoom.select(2, 2), noise_only.select(2, 2)));
}

// The linear part of theta in pixels, for images `aspect` = width / height: normalised
// coordinates are pixels times diag(2 / width, 2 / height).
at::Tensor pixel_linear_part(const at::Tensor& theta, double aspect) {
  const auto to_pixels = torch::tensor({aspect, 1.0}, torch::kDouble);
  return to_pixels.view({1, 2, 1}) * theta.narrow(2, 0, 2).to(torch::kDouble) / to_pixels.view({1, 1, 2});
}

TEST(Augment, RotationTurnsThePixelsUniformlyAndKeepsTheEarlierDraws) {
  const int64_t n = 20000;
  for (const double aspect : {1.0, 40.0 / 48.0, 2.0}) {
    auto gen = seg::make_seeded_generator(6);
    const auto theta = seg::random_affine_theta(n, 0.0, gen, torch::kCPU, 0.0, 30.0, aspect);
    // In pixels, each matrix is a turn: orthonormal, determinant 1, no shift.
    const auto m = pixel_linear_part(theta, aspect);
    const auto gram = torch::matmul(m, m.transpose(1, 2));
    EXPECT_TRUE(torch::allclose(gram, torch::eye(2, torch::kDouble).expand({n, 2, 2}), 0, 1e-6)) << "aspect " << aspect;
    EXPECT_TRUE(torch::allclose(torch::det(m), torch::ones({n}, torch::kDouble), 0, 1e-6)) << "aspect " << aspect;
    EXPECT_EQ(theta.select(2, 2).abs().max().item<float>(), 0.0f);
    // Angles uniform on [-30, 30] degrees: bounds, mean 0, variance 30^2 / 3.
    const auto angle = torch::atan2(m.select(1, 1).select(1, 0), m.select(1, 0).select(1, 0)) * (180 / M_PI);
    EXPECT_LE(angle.abs().max().item<double>(), 30 + 1e-4);
    EXPECT_GT(angle.abs().max().item<double>(), 29.9);
    EXPECT_NEAR(angle.mean().item<double>(), 0.0, 0.3);
    EXPECT_NEAR(angle.var().item<double>(), 300.0, 6.0);
  }
  // The turn is drawn after the noise and the zoom: with it, a seed's matrices are those
  // without it times a turn, and the shifts are the same.
  auto a = seg::make_seeded_generator(9), b = seg::make_seeded_generator(9);
  const auto unturned = seg::random_affine_theta(8, 0.1, a, torch::kCPU, 0.3);
  const auto turned = seg::random_affine_theta(8, 0.1, b, torch::kCPU, 0.3, 20.0);
  EXPECT_TRUE(torch::equal(turned.select(2, 2), unturned.select(2, 2)));
  const auto turn = torch::linalg_solve(unturned.narrow(2, 0, 2).to(torch::kDouble), turned.narrow(2, 0, 2).to(torch::kDouble));
  EXPECT_TRUE(torch::allclose(torch::matmul(turn, turn.transpose(1, 2)), torch::eye(2, torch::kDouble).expand({8, 2, 2}), 0, 1e-5));
  EXPECT_GT((turn.select(1, 1).select(1, 0)).abs().max().item<double>(), 0.01);  // it did turn
  auto c = seg::make_seeded_generator(1);
  EXPECT_THROW(seg::random_affine_theta(2, 0.1, c, torch::kCPU, 0.0, 181.0), seg::Error);
  EXPECT_THROW(seg::random_affine_theta(2, 0.1, c, torch::kCPU, 0.0, -1.0), seg::Error);
}

TEST(Augment, PaddingFillsWhatLiesOutsideTheImage) {
  // A ramp 3..10 along x, shifted right by half its width: the left half comes from outside.
  const auto ramp = (torch::arange(8, torch::kDouble) + 3).view({1, 1, 1, 8}).expand({2, 1, 8, 8}).to(torch::kFloat);
  auto images = ramp.clone();
  images[1] = images[1] * 2;  // the second image's left edge is 6
  images.select(3, 7).select(2, 7).copy_(torch::tensor({1.0f, 2.0f}).view({2, 1}));  // minima 1 and 2, far right
  const auto labels = torch::ones({2, 8, 8}, torch::kLong);
  auto theta = identity_theta(2);
  theta.select(1, 0).select(1, 2).fill_(-1.0);  // output x samples input x - 1: content moves right
  using torch::indexing::Slice;
  const auto outside = Slice(0, 4), inside = Slice(4, 8);
  for (auto padding : {seg::Padding::zeros, seg::Padding::border, seg::Padding::minimum}) {
    const auto [warped, warped_labels] = seg::apply_affine(images, labels, theta, {}, padding);
    // Inside: the image's left half, whatever the padding; labels outside are background.
    EXPECT_TRUE(torch::allclose(warped.index({Slice(), Slice(), Slice(), inside}),
                                images.index({Slice(), Slice(), Slice(), outside}), 1e-5, 1e-5));
    EXPECT_EQ(warped_labels.index({Slice(), Slice(), outside}).sum().item<int64_t>(), 0);
    EXPECT_EQ(warped_labels.index({Slice(), Slice(), inside}).min().item<int64_t>(), 1);
    const auto pad = warped.index({Slice(), 0, Slice(), Slice(0, 3)});  // clear of the edge's blend
    if (padding == seg::Padding::zeros) {
      EXPECT_EQ(pad.abs().max().item<float>(), 0.0f);
    }
    if (padding == seg::Padding::border) {
      EXPECT_TRUE(torch::allclose(pad[0], torch::full({8, 3}, 3.0f)));  // the first column repeated
      EXPECT_TRUE(torch::allclose(pad[1], torch::full({8, 3}, 6.0f)));
    }
    if (padding == seg::Padding::minimum) {
      EXPECT_TRUE(torch::allclose(pad[0], torch::full({8, 3}, 1.0f)));  // each image's own minimum
      EXPECT_TRUE(torch::allclose(pad[1], torch::full({8, 3}, 2.0f)));
    }
  }
}

TEST(Augment, SameSeedSameOutputDifferentSeedsDiffer) {
  auto [images, labels] = sample_batch(3, 32, 32);
  auto run = [&](uint64_t seed) {
    auto gen = seg::make_seeded_generator(seed);
    return seg::random_affine(images, labels, 0.1, gen);
  };
  auto a = run(42), b = run(42), c = run(43);
  EXPECT_TRUE(torch::equal(a.first, b.first));
  EXPECT_TRUE(torch::equal(a.second, b.second));
  EXPECT_FALSE(torch::equal(a.first, c.first));
  // One generator advances: two draws in a row differ, and each sample gets its own theta.
  auto gen = seg::make_seeded_generator(42);
  auto t1 = seg::random_affine_theta(2, 0.1, gen, torch::kCPU);
  auto t2 = seg::random_affine_theta(2, 0.1, gen, torch::kCPU);
  EXPECT_FALSE(torch::equal(t1, t2));
  EXPECT_FALSE(torch::equal(t1[0], t1[1]));
}

TEST(Augment, RejectsMismatchedShapes) {
  auto [images, labels] = sample_batch(2, 16, 16);
  EXPECT_THROW(seg::apply_affine(images, labels, identity_theta(3)), seg::Error);
  EXPECT_THROW(seg::apply_affine(images, labels.slice(1, 0, 8), identity_theta(2)), seg::Error);
  EXPECT_THROW(seg::apply_affine(images.squeeze(1), labels, identity_theta(2)), seg::Error);
  EXPECT_THROW(seg::apply_affine(images, labels.to(torch::kFloat), identity_theta(2)), seg::Error);
  auto [only_images, no_labels] = seg::apply_affine(images, at::Tensor(), identity_theta(2));
  EXPECT_FALSE(no_labels.defined());
  EXPECT_TRUE(torch::equal(only_images, images));
}

TEST(Augment, CpuAndCudaAgree) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: CPU/CUDA agreement not checked";
  auto [images, labels] = sample_batch(4, 128, 96);
  auto gen_cpu = seg::make_seeded_generator(5), gen_gpu = seg::make_seeded_generator(5);
  auto theta_cpu = seg::random_affine_theta(4, 0.1, gen_cpu, torch::kCPU);
  auto theta_gpu = seg::random_affine_theta(4, 0.1, gen_gpu, torch::kCUDA);
  EXPECT_TRUE(theta_gpu.is_cuda());
  EXPECT_TRUE(torch::equal(theta_gpu.cpu(), theta_cpu));
  auto [img_cpu, lab_cpu] = seg::apply_affine(images, labels, theta_cpu);
  auto [img_gpu, lab_gpu] = seg::apply_affine(images.cuda(), labels.cuda(), theta_gpu);
  EXPECT_TRUE(img_gpu.is_cuda());
  EXPECT_TRUE(torch::allclose(img_gpu.cpu(), img_cpu, 1e-4, 1e-2));
  // Nearest sampling may round a coordinate that sits within float error of a pixel edge
  // differently on the two devices; anything beyond a handful of pixels is a real difference.
  const auto differing = lab_gpu.cpu().ne(lab_cpu).sum().item<int64_t>();
  EXPECT_LE(differing, 4) << "of " << lab_cpu.numel();
  // random_affine on CUDA tensors with a CPU generator gives the same as on the CPU.
  auto gen_a = seg::make_seeded_generator(9), gen_b = seg::make_seeded_generator(9);
  auto on_cpu = seg::random_affine(images, labels, 0.1, gen_a);
  auto on_gpu = seg::random_affine(images.cuda(), labels.cuda(), 0.1, gen_b);
  EXPECT_TRUE(torch::allclose(on_gpu.first.cpu(), on_cpu.first, 1e-4, 1e-2));
}

TEST(Augment, MatchesTheNotebooksAffineGridAndGridSample) {
  // The notebook: F.affine_grid(theta, size) and F.grid_sample in float, align_corners=False.
  auto [images, labels] = sample_batch(3, 40, 56);
  auto gen = seg::make_seeded_generator(21);
  auto theta = seg::random_affine_theta(3, 0.1, gen, torch::kCPU);
  auto grid = at::affine_grid_generator(theta, images.sizes(), false);
  auto notebook_images = at::grid_sampler(images, grid, 0, 0, false);
  auto notebook_labels = at::grid_sampler(labels.unsqueeze(1).to(torch::kFloat), grid, 1, 0, false)
                             .squeeze(1).to(torch::kByte);
  auto [out_images, out_labels] = seg::apply_affine(images, labels, theta);
  EXPECT_TRUE(torch::allclose(out_images, notebook_images, 0, 1e-3))
      << (out_images - notebook_images).abs().max().item<double>();
  EXPECT_LE(out_labels.ne(notebook_labels).sum().item<int64_t>(), 2);
}

TEST(RandomIntensity, ZeroStrengthIsTheIdentityAndSeedsRepeat) {
  auto images = torch::randn({3, 1, 16, 16});
  auto gen = seg::make_seeded_generator(4);
  EXPECT_TRUE(torch::equal(seg::random_intensity(images, 0.0, gen), images));
  auto g1 = seg::make_seeded_generator(9), g2 = seg::make_seeded_generator(9);
  auto a = seg::random_intensity(images, 0.2, g1), b = seg::random_intensity(images, 0.2, g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a, images));
  // Per-image monotone: the brightest pixel stays the brightest.
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(a[i].flatten().argmax().item<int64_t>(), images[i].flatten().argmax().item<int64_t>());
}

TEST(ElasticAugment, ZeroFieldIsTheAffineWarpAndAFieldIsSmoothAndSeeded) {
  auto [images, labels] = sample_batch(2, 64, 48);
  const auto theta = identity_theta(2);
  // A zero displacement leaves the (exact) identity exact.
  const auto zero = torch::zeros({2, 64, 48, 2});
  auto [same_images, same_labels] = seg::apply_affine(images, labels, theta, zero);
  EXPECT_TRUE(torch::equal(same_images, images));
  EXPECT_TRUE(torch::equal(same_labels, labels));

  auto gen = seg::make_seeded_generator(3);
  const auto draws = seg::random_elastic_draws(2, 0.02, gen);
  EXPECT_EQ(draws.sizes(), (std::vector<int64_t>{2, 2, 4, 4}));
  EXPECT_NEAR(draws.std().item<double>(), 0.02, 0.008);
  const auto field = seg::elastic_displacement(draws, 64, 48, torch::kCPU);
  EXPECT_EQ(field.sizes(), (std::vector<int64_t>{2, 64, 48, 2}));
  // Smooth: neighbouring pixels move almost alike (a few percent of the offset scale).
  const double step = (field.narrow(1, 1, 63) - field.narrow(1, 0, 63)).abs().max().item<double>();
  EXPECT_LT(step, 0.1 * field.abs().max().item<double>());
  // Corners follow the control points exactly (align_corners=true).
  EXPECT_NEAR(field[0][0][0][0].item<double>(), draws[0][0][0][0].item<double>(), 1e-6);

  auto [warped_images, warped_labels] = seg::apply_affine(images, labels, theta, field);
  EXPECT_FALSE(torch::equal(warped_images, images));
  EXPECT_LE(warped_labels.max().item<int>(), 5);  // labels stay in the class set (nearest)
  // Same seed, same field; the field has to match the images' size.
  auto again = seg::make_seeded_generator(3);
  EXPECT_TRUE(torch::equal(seg::random_elastic_draws(2, 0.02, again), draws));
  EXPECT_THROW(seg::apply_affine(images, labels, theta, torch::zeros({2, 32, 48, 2})), seg::Error);
}

TEST(GaussianBlur, EachImageGetsItsOwnNormalisedKernelOfTheGivenWidth) {
  // An impulse blurred is the kernel itself: it sums to 1, is centred and has variance sigma^2.
  auto impulses = torch::zeros({2, 1, 41, 41});
  impulses.index_put_({torch::indexing::Slice(), 0, 20, 20}, 1.0);
  const auto sigmas = torch::tensor({1.0f, 2.0f});
  const auto blurred = seg::gaussian_blur(impulses, sigmas);
  const auto offsets = (torch::arange(41, torch::kFloat) - 20).pow(2);
  for (int64_t i = 0; i < 2; ++i) {
    const auto kernel = blurred[i][0];
    EXPECT_NEAR(kernel.sum().item<double>(), 1.0, 1e-5);
    EXPECT_EQ(kernel.flatten().argmax().item<int64_t>(), 20 * 41 + 20);
    const double variance = (kernel.sum(0) * offsets).sum().item<double>();
    const double sigma = sigmas[i].item<double>();
    EXPECT_NEAR(variance, sigma * sigma, 0.03 * sigma * sigma) << "sigma " << sigma;
  }
  // A flat image stays flat up to the border: reflection adds no dark frame.
  const auto flat = torch::full({1, 1, 16, 16}, 3.0f);
  EXPECT_TRUE(torch::allclose(seg::gaussian_blur(flat, torch::tensor({2.0f})), flat, 1e-5, 1e-5));
  EXPECT_THROW(seg::gaussian_blur(flat, torch::tensor({1.0f, 2.0f})), seg::Error);
  // A sample is blurred the same alone as beside a wider kernel: ranks holding slices of a
  // batch agree with one process holding all of it.
  const auto noise = torch::randn({2, 1, 24, 24});
  const auto together = seg::gaussian_blur(noise, torch::tensor({0.7f, 2.0f}));
  EXPECT_TRUE(torch::allclose(together[0], seg::gaussian_blur(noise.narrow(0, 0, 1), torch::tensor({0.7f}))[0], 1e-6, 1e-6));
}

TEST(RandomTexture, BlursSharpensAndAddsNoiseAsDrawn) {
  // A vertical step edge: amount -1 is the blurred copy, amount +1 overshoots on both sides
  // (unsharp masking), and the noise is the drawn field times the drawn deviation.
  auto step = torch::zeros({3, 1, 32, 32});
  step.index_put_({torch::indexing::Slice(), 0, torch::indexing::Slice(), torch::indexing::Slice(16)}, 1.0);
  seg::DrawsWithNoise draws{torch::tensor({{1.5f, -1.0f, 0.0f}, {1.5f, 1.0f, 0.0f}, {1.5f, 0.0f, 0.5f}}),
                          torch::randn({3, 1, 32, 32})};
  const auto out = seg::apply_texture(step, draws);
  EXPECT_TRUE(torch::allclose(out[0], seg::gaussian_blur(step.narrow(0, 0, 1), torch::tensor({1.5f}))[0], 1e-5, 1e-5));
  EXPECT_GT(out[0][0][8][15].item<double>(), 0.1);  // soft: the edge spreads
  EXPECT_LT(out[1][0][8][15].item<double>(), -0.1);  // sharpened: dark undershoot left of the edge
  EXPECT_GT(out[1][0][8][16].item<double>(), 1.1);   // and bright overshoot right of it
  EXPECT_TRUE(torch::allclose(out[2], step[2] + 0.5 * draws.noise[2], 1e-5, 1e-5));

  // Strength 0 is the identity; a seed repeats; the ranges follow the strength.
  auto gen = seg::make_seeded_generator(1);
  EXPECT_TRUE(torch::equal(seg::random_texture(step, 0.0, gen), step));
  auto g1 = seg::make_seeded_generator(5), g2 = seg::make_seeded_generator(5);
  EXPECT_TRUE(torch::equal(seg::random_texture(step, 1.0, g1), seg::random_texture(step, 1.0, g2)));
  auto g3 = seg::make_seeded_generator(6);
  const auto many = seg::random_texture_draws(4000, 2, 2, 0.5, g3).per_sample;
  EXPECT_GE(many.select(1, 0).min().item<double>(), 0.5);
  EXPECT_LE(many.select(1, 0).max().item<double>(), 2.0);
  EXPECT_NEAR(many.select(1, 1).min().item<double>(), -0.5, 0.01);
  EXPECT_NEAR(many.select(1, 1).max().item<double>(), 1.25, 0.01);
  EXPECT_NEAR(many.select(1, 2).max().item<double>(), 0.125, 0.01);
  EXPECT_GE(many.select(1, 2).min().item<double>(), 0.0);
}

TEST(RandomProcessing, EqualisesKeepsFlatRegionsFlatAndKeepsEachSamplesMeanAndDeviation) {
  // A dark half (a flat 0), a ramp and a few bright pixels: equalisation maps values by their rank,
  // so it keeps the order, leaves equal values equal and spreads the values evenly.
  auto image = torch::zeros({1, 1, 16, 16});
  image.index_put_({0, 0, torch::indexing::Slice(8)}, torch::linspace(0.1, 0.2, 16).view({1, 16}).pow(3).expand({8, 16}));
  image[0][0][15][15] = 5.0;
  const auto eq = seg::equalize_histogram(image);
  const auto dark = eq.index({0, 0, torch::indexing::Slice(0, 8)});
  EXPECT_EQ(dark.max().item<float>(), dark.min().item<float>());  // the flat half stays flat
  EXPECT_LT(dark.max().item<float>(), eq[0][0][8][0].item<float>());  // and below the ramp
  const auto ramp = eq[0][0][9];
  EXPECT_TRUE((ramp.narrow(0, 1, 14) > ramp.narrow(0, 0, 14)).all().item<bool>());  // order kept
  // The ramp's steps (cubed, so uneven) become even: one rank each.
  const auto steps = ramp.narrow(0, 1, 14) - ramp.narrow(0, 0, 14);
  EXPECT_NEAR((steps.max() - steps.min()).item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(eq.mean().item<double>(), image.mean().item<double>(), 1e-5);

  // Blend 1, amount 0: the equalised image, brought back to the sample's mean and deviation;
  // blend 0, amount 1: large-scale unsharp masking (a blob gains contrast against its surroundings).
  auto two = torch::cat({image, torch::zeros({1, 1, 16, 16})});
  two[1][0].index_put_({torch::indexing::Slice(6, 10), torch::indexing::Slice(6, 10)}, 1.0);
  const auto out = seg::apply_processing(two, torch::tensor({{1.0f, 2.0f, 0.0f}, {0.0f, 3.0f, 1.0f}}));
  const auto rescaled = [](const at::Tensor& x, const at::Tensor& like) {
    return (x - x.mean()) / x.std(false) * like.std(false) + like.mean();
  };
  EXPECT_TRUE(torch::allclose(out[0], rescaled(eq[0], two[0]), 1e-4, 1e-4));
  for (int k = 0; k < 2; ++k) {
    EXPECT_NEAR(out[k].mean().item<double>(), two[k].mean().item<double>(), 1e-5);
    EXPECT_NEAR(out[k].std(false).item<double>(), two[k].std(false).item<double>(), 1e-4);
  }
  const auto blob = out[1][0].index({torch::indexing::Slice(6, 10), torch::indexing::Slice(6, 10)});
  EXPECT_TRUE(torch::equal(out[1][0][0][0] < blob.min(), torch::tensor(true)));
  EXPECT_FALSE(torch::allclose(out[1], two[1], 1e-3, 1e-3));

  // Strength 0 is the identity; a seed repeats; the ranges follow the strength and the width.
  auto gen = seg::make_seeded_generator(1);
  EXPECT_TRUE(torch::equal(seg::random_processing(two, 0.0, gen), two));
  auto g1 = seg::make_seeded_generator(5), g2 = seg::make_seeded_generator(5);
  EXPECT_TRUE(torch::equal(seg::random_processing(two, 1.0, g1), seg::random_processing(two, 1.0, g2)));
  auto g3 = seg::make_seeded_generator(6);
  const auto many = seg::random_processing_draws(4000, 200, 2.0, g3);
  EXPECT_NEAR(many.select(1, 0).max().item<double>(), 1.0, 1e-6);  // a blend never goes past equalised
  EXPECT_GE(many.select(1, 0).min().item<double>(), 0.0);
  EXPECT_NEAR(many.select(1, 1).min().item<double>(), 6.0, 0.1);    // 0.03 of 200 px
  EXPECT_NEAR(many.select(1, 1).max().item<double>(), 24.0, 0.1);   // 0.12 of 200 px
  EXPECT_NEAR(many.select(1, 2).max().item<double>(), 3.0, 0.01);
}

TEST(RandomOpacity, BlendsTowardsSoftTissueInsideTheFrameAndLeavesItsBorder) {
  // A dark lung field (-1) beside a bright one (+1): the target is mean + deviation = 1.
  auto image = -torch::ones({2, 1, 40, 40});
  image.index_put_({torch::indexing::Slice(), 0, torch::indexing::Slice(), torch::indexing::Slice(20)}, 1.0);
  // Sample 0: one dense blob (opacity 1) at the centre, sigma 0.2; sample 1: no blob at all.
  auto blobs = torch::tensor({0.0f, 0.0f, 0.2f, 0.2f, 0.0f}).repeat({2, 6, 1});
  blobs[0][0][4] = 1.0f;
  const auto grain = torch::full({2, 1, 12, 12}, 1.0f);  // 0.75 + 0.25 = the whole opacity
  const auto out = seg::apply_opacity(image, {blobs, grain});
  EXPECT_NEAR(out[0][0][19][19].item<double>(), 1.0, 1e-5);   // the dense core reaches soft tissue
  EXPECT_NEAR(out[0][0][19][30].item<double>(), 1.0, 1e-5);   // already bright: stays
  EXPECT_NEAR(out[0][0][19][2].item<double>(), -1.0, 1e-6);   // beyond 1.67 sigma: untouched
  EXPECT_TRUE(torch::equal(out[1], image[1]));                // no blob, no change
  // Every pixel moves towards the target and never past it.
  EXPECT_TRUE((out >= image - 1e-6).all().item<bool>());
  EXPECT_TRUE((out <= 1.0 + 1e-6).all().item<bool>());

  // Drawn blobs never reach the outer rows and columns of the frame, whatever the draws.
  auto gen = seg::make_seeded_generator(3);
  const auto frame = torch::randn({64, 1, 40, 40});
  const auto drawn = seg::random_opacity(frame, 1.0, gen);
  using torch::indexing::Slice;
  for (const auto& edge : {Slice(0, 1), Slice(39, 40)}) {
    EXPECT_TRUE(torch::equal(drawn.index({Slice(), 0, edge}), frame.index({Slice(), 0, edge})));
    EXPECT_TRUE(torch::equal(drawn.index({Slice(), 0, Slice(), edge}), frame.index({Slice(), 0, Slice(), edge})));
  }
  EXPECT_FALSE(torch::allclose(drawn, frame));

  // Strength 0 is the identity and draws nothing; a seed repeats; about half the blobs are
  // present, and their opacity follows the strength, never past 1.
  auto g0 = seg::make_seeded_generator(1), untouched = seg::make_seeded_generator(1);
  EXPECT_TRUE(torch::equal(seg::random_opacity(frame, 0.0, g0), frame));
  EXPECT_TRUE(torch::equal(torch::rand({4}, g0), torch::rand({4}, untouched)));
  auto g1 = seg::make_seeded_generator(5), g2 = seg::make_seeded_generator(5);
  EXPECT_TRUE(torch::equal(seg::random_opacity(frame, 1.0, g1), seg::random_opacity(frame, 1.0, g2)));
  auto g3 = seg::make_seeded_generator(6);
  const auto many = seg::random_opacity_draws(4000, 0.6, g3).per_sample;
  const auto opacity = many.select(2, 4);
  EXPECT_NEAR((opacity > 0).to(torch::kFloat).mean().item<double>(), 0.5, 0.02);
  EXPECT_NEAR(opacity.max().item<double>(), 0.6, 1e-3);
  EXPECT_NEAR(opacity.masked_select(opacity > 0).min().item<double>(), 0.3, 1e-3);
  EXPECT_NEAR(seg::random_opacity_draws(4000, 3.0, g3).per_sample.select(2, 4).max().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(many.select(2, 2).min().item<double>(), 0.05, 1e-3);
  EXPECT_NEAR(many.select(2, 3).max().item<double>(), 0.3, 1e-3);
}

namespace {
// Devices drawn by hand: no device at all, one tube straight across the middle, a pacemaker box.
seg::DeviceDraws hand_drawn_devices(int64_t batch) {
  auto o = torch::TensorOptions(torch::kDouble);
  seg::DeviceDraws d{torch::zeros({batch, 8, 8}, o), torch::zeros({batch, 4, 4}, o), torch::zeros({batch, 5}, o),
                     torch::tensor({1.0, 0.5}, o).repeat({batch, 1})};
  // Sample 1: a thick curve from x = -1.2 to 1.2 along y = 0.1 (control in the middle).
  d.curves[1][0] = torch::tensor({-1.2, 0.1, 0.0, 0.1, 1.2, 0.1, 1.0, 1.0}, o);
  // Sample 2: a pacemaker at (0.5, -0.5), 0.12 x 0.08 of the half-width.
  d.box[2] = torch::tensor({0.5, -0.5, 0.06, 0.04, 1.0}, o);
  return d;
}
}  // namespace

TEST(RandomDevices, DrawsThinBrightDevicesAndNothingElse) {
  auto gen = seg::make_seeded_generator(2);
  const auto images = torch::randn({3, 1, 256, 256}, gen);
  const auto out = seg::apply_devices(images, hand_drawn_devices(3));
  using torch::indexing::Slice;
  const auto brightest = [&](int64_t s) { return images[s].max().item<double>(); };
  EXPECT_TRUE(torch::equal(out[0], images[0]));  // nothing present: untouched
  // The tube: y = 0.1 is row 140.3, so rows 139 to 141 (3 px wide) at the brightest value
  // across the whole width, soft 2 px either side, nothing beyond.
  for (int64_t row : {139, 140, 141})
    EXPECT_TRUE(torch::allclose(out[1][0][row], torch::full({256}, brightest(1)), 1e-5, 1e-5)) << row;
  EXPECT_TRUE(torch::equal(out[1].index({0, Slice(0, 137)}), images[1].index({0, Slice(0, 137)})));
  EXPECT_TRUE(torch::equal(out[1].index({0, Slice(144)}), images[1].index({0, Slice(144)})));
  // The pacemaker: columns 184..199, rows 59..68 at the brightest value; 10 px away, untouched.
  EXPECT_TRUE(torch::allclose(out[2].index({0, Slice(59, 69), Slice(184, 200)}),
                              torch::full({10, 16}, brightest(2)), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(out[2].index({0, Slice(), Slice(0, 174)}), images[2].index({0, Slice(), Slice(0, 174)})));
  // Every pixel moves towards the sample's brightest value and never past it.
  EXPECT_TRUE((out >= images - 1e-6).all().item<bool>());
  EXPECT_TRUE((out <= images.amax({1, 2, 3}, true) + 1e-6).all().item<bool>());
  // A rank's slice of the draws gives that rank's slice of the batch.
  EXPECT_TRUE(torch::equal(seg::apply_devices(images.narrow(0, 1, 2), hand_drawn_devices(3).narrow(1, 2)),
                           out.narrow(0, 1, 2)));

  // Drawn: probability 0 is the identity and draws nothing; a seed repeats; the devices cover
  // a few per cent of the film, not the film.
  const auto frame = torch::randn({16, 1, 256, 256}, gen);
  auto g0 = seg::make_seeded_generator(1), untouched = seg::make_seeded_generator(1);
  EXPECT_TRUE(torch::equal(seg::random_devices(frame, 0.0, g0), frame));
  EXPECT_TRUE(torch::equal(torch::rand({4}, g0), torch::rand({4}, untouched)));
  auto g1 = seg::make_seeded_generator(5), g2 = seg::make_seeded_generator(5);
  const auto drawn = seg::random_devices(frame, 1.0, g1);
  EXPECT_TRUE(torch::equal(drawn, seg::random_devices(frame, 1.0, g2)));
  const auto covered = (drawn - frame).abs().gt(1e-3).to(torch::kDouble).mean({1, 2, 3});
  EXPECT_GT(covered.min().item<double>(), 0.005);
  EXPECT_LT(covered.max().item<double>(), 0.15);
  // A sample shows devices with the probability given.
  auto g3 = seg::make_seeded_generator(6);
  const auto many = seg::random_device_draws(4000, 0.3, g3);
  const auto shown = many.curves.select(2, 7).amax(1).maximum(many.rings.select(2, 3).amax(1)).maximum(many.box.select(1, 4));
  EXPECT_NEAR(shown.mean().item<double>(), 0.3, 0.025);
}

TEST(Upload, ConvertsOnTheCpuAndCopiesSnapshotsToCuda) {
  const auto draws = torch::arange(6, torch::kFloat).view({2, 3});
  EXPECT_TRUE(torch::equal(seg::upload(draws, torch::kCPU), draws));
  const auto slice = draws.narrow(1, 1, 2);  // a rank's slice: not contiguous
  const auto converted = seg::upload(slice, torch::kCPU, torch::kDouble);
  EXPECT_EQ(converted.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::equal(converted, slice.to(torch::kDouble)));
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: the asynchronous copy not checked";
  auto host = slice.clone();
  const auto on_gpu = seg::upload(host, torch::kCUDA, torch::kDouble);
  host.add_(100);  // the copy is a snapshot, whatever happens to the draws after it was queued
  EXPECT_TRUE(on_gpu.is_cuda());
  EXPECT_TRUE(torch::equal(on_gpu.cpu(), slice.to(torch::kDouble)));
}

namespace {

// The augmentation strengths a training step took before the pipeline.
struct Strengths {
  double scale = 0.1, intensity = 0, elastic = 0, zoom = 0, rotation = 0, texture = 0, processing = 0, opacity = 0,
         devices = 0;
};

// The reference: train_network's augmentation block as it was before AugmentPipeline, verbatim
// but for the names (options.augment_X -> s.X): every rank draws the global batch's parameters
// and takes its own slice.
std::pair<at::Tensor, at::Tensor> step_before_the_pipeline(const Strengths& s, at::Tensor x, at::Tensor y,
                                                          int64_t global_batch, int64_t rank, int64_t batch,
                                                          at::Generator& gen, const at::Device& device) {
  if (s.scale > 0 || s.elastic > 0 || s.zoom > 0 || s.rotation > 0) {
    const double aspect = static_cast<double>(x.size(3)) / static_cast<double>(x.size(2));
    const auto theta = seg::random_affine_theta(global_batch, s.scale, gen, device, s.zoom, s.rotation, aspect)
                           .narrow(0, rank * batch, batch);
    at::Tensor displacement;
    if (s.elastic > 0)
      displacement = seg::elastic_displacement(seg::random_elastic_draws(global_batch, s.elastic, gen).narrow(0, rank * batch, batch),
                                               x.size(2), x.size(3), device);
    seg::Padding padding = seg::Padding::zeros;
    if (s.zoom > 0 || s.rotation > 0) padding = static_cast<seg::Padding>(torch::randint(3, {1}, gen, torch::kLong).item<int64_t>());
    std::tie(x, y) = seg::apply_affine(x, y, theta, displacement, padding);
  }
  if (s.opacity > 0) x = seg::apply_opacity(x, seg::random_opacity_draws(global_batch, s.opacity, gen).narrow(rank * batch, batch));
  if (s.devices > 0) x = seg::apply_devices(x, seg::random_device_draws(global_batch, s.devices, gen).narrow(rank * batch, batch));
  if (s.intensity > 0)
    x = seg::apply_intensity(x, seg::random_intensity_draws(global_batch, s.intensity, gen).narrow(1, rank * batch, batch));
  if (s.processing > 0)
    x = seg::apply_processing(x, seg::random_processing_draws(global_batch, x.size(3), s.processing, gen).narrow(0, rank * batch, batch));
  if (s.texture > 0)
    x = seg::apply_texture(x, seg::random_texture_draws(global_batch, x.size(2), x.size(3), s.texture, gen).narrow(rank * batch, batch));
  return {x, y};
}

seg::AugmentOptions options_of(const Strengths& s) {
  seg::AugmentOptions o;
  o.strengths = {{"scale", s.scale},     {"intensity", s.intensity},   {"elastic", s.elastic},
                 {"zoom", s.zoom},       {"rotation", s.rotation},     {"texture", s.texture},
                 {"processing", s.processing}, {"opacity", s.opacity}, {"devices", s.devices}};
  return o;
}

// Normalised images of two sizes' worth of structure, and labels 0..5.
std::pair<at::Tensor, at::Tensor> normalised_batch(int64_t batch, int64_t h, int64_t w) {
  auto [images, labels] = sample_batch(batch, h, w);
  return {(images - 128) / 64, labels.to(torch::kLong)};
}

}  // namespace

// A seed draws the same numbers, and so the same batches, as training drew before the pipeline:
// for one process and for each rank's slice of a data-parallel step, every augmentation alone
// and all together, over several steps of one generator.
TEST(AugmentPipeline, DrawsTheSameBatchesBitForBitAsTrainingDidBefore) {
  std::vector<std::pair<std::string, Strengths>> cases;
  cases.push_back({"notebook", Strengths{}});
  cases.push_back({"off", Strengths{0}});
  for (const auto& [name, member] : std::vector<std::pair<std::string, double Strengths::*>>{
           {"intensity", &Strengths::intensity}, {"elastic", &Strengths::elastic}, {"zoom", &Strengths::zoom},
           {"rotation", &Strengths::rotation}, {"texture", &Strengths::texture}, {"processing", &Strengths::processing},
           {"opacity", &Strengths::opacity}, {"devices", &Strengths::devices}}) {
    Strengths alone{0};
    alone.*member = name == "rotation" ? 15 : name == "elastic" ? 0.02 : 0.5;
    cases.push_back({name + " alone", alone});
  }
  cases.push_back({"all", Strengths{0.1, 0.2, 0.02, 0.5, 12, 0.5, 0.7, 1, 0.5}});
  const int64_t batch = 2, height = 40, width = 36;
  for (const auto& [name, strengths] : cases) {
    const seg::AugmentPipeline pipeline(options_of(strengths));
    for (const int64_t world : {1, 3}) {
      const int64_t global_batch = batch * world;
      auto before = seg::make_seeded_generator(17), after = seg::make_seeded_generator(17);
      for (int step = 0; step < 3; ++step) {
        const auto [images, labels] = normalised_batch(global_batch, height, width);
        const auto draws = pipeline.draw({global_batch, height, width}, after);
        for (int64_t rank = 0; rank < world; ++rank) {
          const auto x = images.narrow(0, rank * batch, batch), y = labels.narrow(0, rank * batch, batch);
          // Every rank draws the whole global batch from its own copy of the generator.
          auto rank_gen = before.clone();
          const auto [old_x, old_y] = step_before_the_pipeline(strengths, x, y, global_batch, rank, batch, rank_gen, torch::kCPU);
          const auto [new_x, new_y] = pipeline.apply(x, y, draws.slice(rank * batch, batch));
          EXPECT_TRUE(torch::equal(old_x, new_x)) << name << ", world " << world << ", rank " << rank << ", step " << step
                                                  << ": " << (old_x - new_x).abs().max().item<double>();
          EXPECT_TRUE(torch::equal(old_y, new_y)) << name << ", world " << world << ", rank " << rank << ", step " << step;
          if (rank + 1 == world) before = rank_gen;
        }
      }
      // Both generators were advanced by the same draws.
      EXPECT_TRUE(torch::equal(before.get_state(), after.get_state())) << name << ", world " << world;
    }
  }
}

// --augment-invert: the film as its negative in the chosen samples, labels and the other
// augmentations' draws untouched.
TEST(InvertAugment, ShowsChosenFilmsAsTheirNegativeAndLeavesTheRestAlone) {
  const auto* invert = seg::find_augmentation("invert");
  ASSERT_NE(invert, nullptr);
  EXPECT_EQ(seg::strength_range(*invert), "0 to 1");
  EXPECT_FALSE(invert->geometric);
  const auto [images, labels] = normalised_batch(4, 24, 20);
  auto with = [](double invert_p) {
    auto o = options_of(Strengths{0.1, 0.2, 0, 0.3, 0, 0.5});
    o.strengths["invert"] = invert_p;
    return seg::AugmentPipeline(o);
  };
  auto run = [&](const seg::AugmentPipeline& p) {
    auto gen = seg::make_seeded_generator(8);
    return p.apply(images, labels, p.draw({4, 24, 20}, gen));
  };
  const auto [plain, plain_labels] = run(with(0));
  const auto [inverted, inverted_labels] = run(with(1));
  EXPECT_TRUE(torch::equal(inverted_labels, plain_labels));
  // Each image mirrored within its own range: darkest and brightest swap, the order reverses.
  const auto low = plain.amin({1, 2, 3}, true), high = plain.amax({1, 2, 3}, true);
  EXPECT_TRUE(torch::allclose(inverted, low + high - plain, 1e-5, 1e-5));
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_EQ(inverted[i].flatten().argmin().item<int64_t>(), plain[i].flatten().argmax().item<int64_t>()) << i;
  // Off, it draws nothing: the pipeline is the one without it.
  const auto off = with(0);
  EXPECT_TRUE(std::none_of(off.steps().begin(), off.steps().end(), [](auto* a) { return a->name == "invert"; }));
  // A probability: about half the films of a large batch, and nothing else changes in them.
  const auto [many, many_labels] = normalised_batch(2000, 4, 4);
  auto o = options_of(Strengths{0});
  o.strengths["invert"] = 0.5;
  const seg::AugmentPipeline half(o);
  auto gen = seg::make_seeded_generator(3);
  const auto out = half.apply(many, many_labels, half.draw({2000, 4, 4}, gen)).first;
  const auto changed = (out != many).flatten(1).any(1);
  EXPECT_NEAR(changed.to(torch::kDouble).mean().item<double>(), 0.5, 0.04);
  const auto kept = ~changed;
  EXPECT_TRUE(torch::equal(out.index({kept}), many.index({kept})));
  seg::Recipe recipe;
  recipe.augmentation.strengths["invert"] = 1.5;
  EXPECT_THROW(seg::check_recipe(recipe), seg::InvalidOption);
}
