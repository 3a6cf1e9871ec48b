#pragma once
// The course notebook's two networks in Python (../shared/spec/course-notebook.txt), for test
// scripts run by /usr/bin/python3: `fullyconv(num_classes, widths)` (its flat nn.Sequential;
// widths 16/32/64/64, or 64/128/256/256 for fullyconv2) and `LightUNet(num_classes)`.
#include <string>

namespace seg::testing {

inline const std::string kNotebookNetworksPython = R"PY(
import torch
import torch.nn as nn
import torch.nn.functional as F

def fullyconv(num_classes=6, widths=(16, 32, 64, 64)):
    layers, c = [], 1
    for w, s in zip(widths, (2, 2, 1, 1)):
        layers += [nn.Conv2d(c, w, 3, stride=s, padding=1), nn.InstanceNorm2d(w), nn.LeakyReLU()]
        c = w
    return nn.Sequential(*layers, nn.Conv2d(c, num_classes, 3, padding=1))

class LightUNet(nn.Module):
    def __init__(self, num_classes: int, num_input_channel: int = 1):
        super().__init__()
        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, stride=s, padding=1), nn.InstanceNorm2d(o), nn.LeakyReLU())
        self.encoder_block1 = block(num_input_channel, 64, 1)
        self.encoder_block2 = block(64, 128, 2)
        self.encoder_block3 = block(128, 256, 2)
        self.encoder_block4 = block(256, 512, 2)
        self.decoder_block4 = block(512 + 256, 256, 1)
        self.decoder_block3 = block(256 + 128, 128, 1)
        self.decoder_block2 = block(128 + 64, 64, 1)
        self.classifier = nn.Conv2d(64, num_classes, 1)

    def upscale_concat(self, from_skipconnection, from_decoder):
        from_decoder_upscaled = F.interpolate(from_decoder, scale_factor=2, mode='bilinear')
        return torch.cat((from_decoder_upscaled, from_skipconnection), dim=1)

    def forward(self, x):
        x1 = self.encoder_block1(x)
        x2 = self.encoder_block2(x1)
        x3 = self.encoder_block3(x2)
        x4 = self.encoder_block4(x3)
        x = self.decoder_block4(self.upscale_concat(x3, x4))
        x = self.decoder_block3(self.upscale_concat(x2, x))
        x = self.decoder_block2(self.upscale_concat(x1, x))
        return self.classifier(x)

torch.set_num_threads(1)
)PY";

}  // namespace seg::testing
