// The notebook's three networks and ours. The notebook's parameter names follow its PyTorch
// modules (an nn.Sequential of conv groups; the LightUNet's encoder_block1 ... classifier),
// so a Python state_dict of the same network loads, and ours loads in Python.
#include <seg/error.h>
#include <seg/models.h>

#include <torch/torch.h>

#include <sstream>

namespace seg {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

// Conv3x3 (padding 1) + InstanceNorm (no affine parameters, as PyTorch's default) + LeakyReLU(0.01).
nn::Sequential conv_group(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)),
                        nn::InstanceNorm2d(nn::InstanceNorm2dOptions(out)),
                        nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.01)));
}

// Bilinear upsampling of decoder features to a skip connection's size (x2 for even sizes;
// also right for odd input sizes), concatenated with the skip: every U-Net's decoder input.
at::Tensor upsample_and_concat(const at::Tensor& coarse, const at::Tensor& skip) {
  auto up = F::interpolate(coarse, F::InterpolateFuncOptions()
                                       .size(std::vector<int64_t>{skip.size(2), skip.size(3)})
                                       .mode(torch::kBilinear)
                                       .align_corners(false));
  return torch::cat({up, skip}, 1);
}

// Four conv groups (strides 2, 2, 1, 1) and a 3x3 classifier: logits at 1/4 resolution.
class FullyConvImpl : public SegNetImpl {
 public:
  FullyConvImpl(const NetworkSpec& spec, std::array<int64_t, 4> widths) {
    const std::array<int64_t, 4> strides{2, 2, 1, 1};
    int64_t in = spec.in_channels;
    for (size_t i = 0; i < widths.size(); ++i) {
      groups_.push_back(register_module(std::to_string(i), conv_group(in, widths[i], strides[i])));
      in = widths[i];
    }
    classifier_ = register_module("4", nn::Conv2d(nn::Conv2dOptions(in, spec.num_classes, 3).padding(1)));
  }
  at::Tensor forward(const at::Tensor& input) override {
    at::Tensor x = input;
    for (auto& group : groups_) x = group->forward(x);
    return classifier_->forward(x);
  }

 private:
  std::vector<nn::Sequential> groups_;
  nn::Conv2d classifier_{nullptr};
};

// Encoder 64 (stride 1), 128, 256, 512 (stride 2); decoder 256, 128, 64 on bilinear x2
// upsampling concatenated with the skip; 1x1 classifier at full resolution.
class LightUNetImpl : public SegNetImpl {
 public:
  explicit LightUNetImpl(const NetworkSpec& spec) {
    encoder1_ = register_module("encoder_block1", conv_group(spec.in_channels, 64, 1));
    encoder2_ = register_module("encoder_block2", conv_group(64, 128, 2));
    encoder3_ = register_module("encoder_block3", conv_group(128, 256, 2));
    encoder4_ = register_module("encoder_block4", conv_group(256, 512, 2));
    decoder4_ = register_module("decoder_block4", conv_group(512 + 256, 256, 1));
    decoder3_ = register_module("decoder_block3", conv_group(256 + 128, 128, 1));
    decoder2_ = register_module("decoder_block2", conv_group(128 + 64, 64, 1));
    classifier_ = register_module("classifier", nn::Conv2d(nn::Conv2dOptions(64, spec.num_classes, 1)));
  }
  at::Tensor forward(const at::Tensor& input) override {
    auto x1 = encoder1_->forward(input);
    auto x2 = encoder2_->forward(x1);
    auto x3 = encoder3_->forward(x2);
    auto x4 = encoder4_->forward(x3);
    auto x = decoder4_->forward(upsample_and_concat(x4, x3));
    x = decoder3_->forward(upsample_and_concat(x, x2));
    x = decoder2_->forward(upsample_and_concat(x, x1));
    return classifier_->forward(x);
  }

 private:
  nn::Sequential encoder1_{nullptr}, encoder2_{nullptr}, encoder3_{nullptr}, encoder4_{nullptr};
  nn::Sequential decoder4_{nullptr}, decoder3_{nullptr}, decoder2_{nullptr};
  nn::Conv2d classifier_{nullptr};
};

// Conv3x3 + affine InstanceNorm + LeakyReLU: the learnt scale and shift help small networks.
nn::Sequential affine_conv_group(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)),
                        nn::InstanceNorm2d(nn::InstanceNorm2dOptions(out).affine(true)),
                        nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.01)));
}

// A small U-Net built for time to accuracy on the CPU: five levels (encoder widths
// `widths`, one conv each, the first at full resolution, then stride 2), a decoder that
// narrows as it climbs (one conv per level on upsampled + skip), and logits predicted at
// `output_stride` of the input (1 or 2); a coarser head skips the most expensive
// full-resolution decoder convolution and the caller upsamples the logits.
class SmallUNetImpl : public SegNetImpl {
 public:
  SmallUNetImpl(const NetworkSpec& spec, std::vector<int64_t> widths, std::vector<int64_t> decoder_widths,
                int64_t output_stride)
      : output_stride_(output_stride) {
    int64_t in = spec.in_channels;
    for (size_t i = 0; i < widths.size(); ++i) {
      encoders_.push_back(register_module("encoder" + std::to_string(i + 1),
                                          affine_conv_group(in, widths[i], i == 0 ? 1 : 2)));
      in = widths[i];
    }
    // decoder_widths[j] is the output of the decoder level j (from the deepest up).
    const size_t levels = output_stride == 1 ? widths.size() - 1 : widths.size() - 2;
    for (size_t j = 0; j < levels; ++j) {
      const int64_t skip = widths[widths.size() - 2 - j];
      decoders_.push_back(register_module("decoder" + std::to_string(widths.size() - 1 - j),
                                          affine_conv_group(in + skip, decoder_widths[j], 1)));
      in = decoder_widths[j];
    }
    classifier_ = register_module("classifier", nn::Conv2d(nn::Conv2dOptions(in, spec.num_classes, 1)));
  }
  at::Tensor forward(const at::Tensor& input) override {
    std::vector<at::Tensor> skips;
    at::Tensor x = input;
    for (auto& encoder : encoders_) {
      x = encoder->forward(x);
      skips.push_back(x);
    }
    for (size_t j = 0; j < decoders_.size(); ++j) {
      x = decoders_[j]->forward(upsample_and_concat(x, skips[skips.size() - 2 - j]));
    }
    return classifier_->forward(x);
  }

 private:
  int64_t output_stride_;
  std::vector<nn::Sequential> encoders_, decoders_;
  nn::Conv2d classifier_{nullptr};
};

// conv3x3 + affine InstanceNorm, LeakyReLU, conv3x3 + affine InstanceNorm, added to the input
// (through a 1x1 conv + InstanceNorm where the width or resolution changes), LeakyReLU: the
// residual block of nnU-Net's ResEnc and of He et al.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t out, int64_t stride) {
    conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)));
    norm1_ = register_module("norm1", nn::InstanceNorm2d(nn::InstanceNorm2dOptions(out).affine(true)));
    conv2_ = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1)));
    norm2_ = register_module("norm2", nn::InstanceNorm2d(nn::InstanceNorm2dOptions(out).affine(true)));
    if (in != out || stride != 1)
      shortcut_ = register_module("shortcut", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride)),
                                                             nn::InstanceNorm2d(nn::InstanceNorm2dOptions(out).affine(true))));
  }
  at::Tensor forward(const at::Tensor& x) {
    auto y = F::leaky_relu(norm1_->forward(conv1_->forward(x)), F::LeakyReLUFuncOptions().negative_slope(0.01));
    y = norm2_->forward(conv2_->forward(y));
    y = y + (shortcut_ ? shortcut_->forward(x) : x);
    return F::leaky_relu(y, F::LeakyReLUFuncOptions().negative_slope(0.01));
  }

 private:
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  nn::InstanceNorm2d norm1_{nullptr}, norm2_{nullptr};
  nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// A residual U-Net: one residual block (two convolutions) per level on the way down (the
// first at full resolution, then stride 2) and on the way up (on bilinear x2 upsampling
// concatenated with the skip), logits at full resolution, and 1x1 heads on the next
// `auxiliary_heads` coarser decoder levels for deep supervision.
class ResidualUNetImpl : public SegNetImpl {
 public:
  ResidualUNetImpl(const NetworkSpec& spec, std::vector<int64_t> widths, int64_t auxiliary_heads) {
    int64_t in = spec.in_channels;
    for (size_t i = 0; i < widths.size(); ++i) {
      encoders_.push_back(register_module("encoder" + std::to_string(i + 1), ResidualBlock(in, widths[i], i == 0 ? 1 : 2)));
      in = widths[i];
    }
    for (size_t j = 0; j + 1 < widths.size(); ++j) {
      const size_t level = widths.size() - 2 - j;  // decoders climb from the deepest skip
      decoders_.push_back(register_module("decoder" + std::to_string(level + 1),
                                          ResidualBlock(in + widths[level], widths[level], 1)));
      in = widths[level];
    }
    classifier_ = register_module("classifier", nn::Conv2d(nn::Conv2dOptions(in, spec.num_classes, 1)));
    for (int64_t k = 1; k <= auxiliary_heads; ++k)
      auxiliary_.push_back(register_module("auxiliary" + std::to_string(k),
                                           nn::Conv2d(nn::Conv2dOptions(widths[k], spec.num_classes, 1))));
  }
  at::Tensor forward(const at::Tensor& input) override { return run(input, false).front(); }
  std::vector<at::Tensor> forward_supervised(const at::Tensor& input) override { return run(input, true); }

 private:
  std::vector<at::Tensor> run(const at::Tensor& input, bool with_auxiliary) {
    std::vector<at::Tensor> skips;
    at::Tensor x = input;
    for (auto& encoder : encoders_) {
      x = encoder->forward(x);
      skips.push_back(x);
    }
    // Decoder outputs by level, finest (level 0) first, for the auxiliary heads.
    std::vector<at::Tensor> levels(decoders_.size());
    for (size_t j = 0; j < decoders_.size(); ++j) {
      x = decoders_[j]->forward(upsample_and_concat(x, skips[skips.size() - 2 - j]));
      levels[decoders_.size() - 1 - j] = x;
    }
    std::vector<at::Tensor> outputs{classifier_->forward(x)};
    if (with_auxiliary)
      for (size_t k = 0; k < auxiliary_.size(); ++k) outputs.push_back(auxiliary_[k]->forward(levels[k + 1]));
    return outputs;
  }
  std::vector<ResidualBlock> encoders_, decoders_;
  nn::Conv2d classifier_{nullptr};
  std::vector<nn::Conv2d> auxiliary_;
};

}  // namespace

const std::vector<RegisteredNetwork>& network_registry() {
  static const std::vector<RegisteredNetwork> registry = {
      {"fcn", "fully convolutional, 16/32/64/64 channels, logits at 1/4 (notebook; 63,686 parameters)",
       [](const NetworkSpec& s) -> SegNet { return std::make_shared<FullyConvImpl>(s, std::array<int64_t, 4>{16, 32, 64, 64}); }},
      {"fcn-wide", "fully convolutional, 64/128/256/256 channels (notebook; 973,574 parameters)",
       [](const NetworkSpec& s) -> SegNet { return std::make_shared<FullyConvImpl>(s, std::array<int64_t, 4>{64, 128, 256, 256}); }},
      {"light-unet", "light U-Net, 64..512 channels, one conv per level (notebook; 3,873,094 parameters)",
       [](const NetworkSpec& s) -> SegNet { return std::make_shared<LightUNetImpl>(s); }},
      {"fast", "small five-level U-Net (8..128 channels, affine InstanceNorm, logits at 1/2), "
               "trained with Dice + cross-entropy, AdamW and a one-cycle schedule: the time-to-accuracy preset",
       [](const NetworkSpec& s) -> SegNet {
         // Widths measured for CPU step time (bench/train_step_profile): 8 full-resolution
         // channels and a 16-channel top decoder cut a step by a quarter against 16 and 32,
         // whose convolutions' backward passes dominate, and reach a higher Dice in the same time.
         return std::make_shared<SmallUNetImpl>(s, std::vector<int64_t>{8, 32, 64, 128, 128},
                                                std::vector<int64_t>{64, 32, 16}, 2);
       }},
      {"res-unet", "residual U-Net, five levels of 16..256 channels, two convolutions (a residual block) per "
                   "level, logits at full resolution, deep supervision at 1/2 and 1/4; Dice + cross-entropy, "
                   "AdamW, one-cycle, per-image normalisation, intensity and zoom augmentation, 100 epochs: "
                   "the accuracy preset (2,076,978 parameters)",
       [](const NetworkSpec& s) -> SegNet {
         return std::make_shared<ResidualUNetImpl>(s, std::vector<int64_t>{16, 32, 64, 128, 256}, 2);
       }},
  };
  return registry;
}

std::vector<std::string> network_names() {
  std::vector<std::string> names;
  for (const auto& n : network_registry()) names.push_back(n.name);
  return names;
}

SegNet make_network(const NetworkSpec& spec) {
  for (const auto& n : network_registry())
    if (n.name == spec.architecture) return n.make(spec);
  std::string known;
  for (const auto& n : network_names()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown network \"" + spec.architecture + "\" (known: " + known + ")");
}

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

int64_t count_trainable_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) total += p.numel();
  return total;
}

std::string describe_network(const torch::nn::Module& module) {
  std::ostringstream out;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    if (!item.value()->children().empty()) continue;
    int64_t params = 0;
    for (const auto& p : item.value()->parameters(false)) params += p.numel();
    std::ostringstream line;
    item.value()->pretty_print(line);
    out << "  " << item.key() << "  " << line.str() << "  params=" << params << "\n";
  }
  out << "trainable parameters: " << count_trainable_parameters(module) << "\n";
  return out.str();
}

}  // namespace seg
