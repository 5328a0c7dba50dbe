#version 100

//_DEFINES_

#if defined(EXTERNAL)
#extension GL_OES_EGL_image_external : require
#endif

// Converts the RGB texture `tex` into Y'CbCr planes packed as bytes: each RGBA texel of the
// target holds the next four bytes of a plane's row (four 8-bit samples, or two 16-bit little
// endian ones with the value in their top ten bits). The target's rows are the planes' rows one
// after another. See compositor/src/yuv.rs.

// Positions up to 3 x 2160 rows and codes up to 1023 need 32-bit floats; the converter checks
// the driver before it converts frames.
#ifdef GL_FRAGMENT_PRECISION_HIGH
precision highp float;
#else
#error the Y'CbCr conversion needs highp floats
#endif

#if defined(EXTERNAL)
uniform samplerExternalOES tex;
#else
uniform sampler2D tex;
#endif
uniform float alpha;
varying vec2 v_coords;
#if defined(DEBUG_FLAGS)
uniform float tint;
#endif

// The source's size in pixels, and the target's in texels.
uniform vec2 src_size;
uniform vec2 dst_size;
// x: bytes per sample (1 or 2); y: 1.0 for three full-resolution planes, 0.0 for 4:2:0 (a Y
// plane, then one plane of interleaved Cb, Cr).
uniform vec2 shape;
// Rows of the matrix from R', G', B' codes (0..255) to Y', Cb and Cr codes.
uniform vec3 y_row;
uniform vec3 cb_row;
uniform vec3 cr_row;
// The offsets added to Y' and to chroma, and the largest code.
uniform vec3 offsets;

vec3 rgb_at(float x, float y) {
    vec2 p = min(vec2(x, y), src_size - 1.0);
    return texture2D(tex, (p + 0.5) / src_size).rgb * 255.0;
}

float quantise(vec3 row, float offset, vec3 rgb) {
    return clamp(floor(dot(row, rgb) + offset + 0.5), 0.0, offsets.z);
}

// Sample `s` of row `row` of plane `plane`, as its code.
float sample_at(float plane, float s, float row) {
    if (plane < 0.5) {
        return quantise(y_row, offsets.x, rgb_at(s, row));
    }
    if (shape.y > 0.5) {
        vec3 rgb = rgb_at(s, row);
        return plane < 1.5 ? quantise(cb_row, offsets.y, rgb) : quantise(cr_row, offsets.y, rgb);
    }
    // 4:2:0: Cb and Cr of pair s / 2, from the mean of its 2x2 block.
    float x = floor(s / 2.0) * 2.0;
    float y = row * 2.0;
    vec3 mean = (rgb_at(x, y) + rgb_at(x + 1.0, y) + rgb_at(x, y + 1.0) + rgb_at(x + 1.0, y + 1.0)) * 0.25;
    return mod(s, 2.0) < 0.5 ? quantise(cb_row, offsets.y, mean) : quantise(cr_row, offsets.y, mean);
}

void main() {
    // Which texel of the target this is, from the texture coordinates across it (0 to 1, top
    // row first) rather than gl_FragCoord, which GLSL ES lets be mediump: Mesa's llvmpipe
    // gets its x wrong past 1024.
    vec2 texel = floor(v_coords * dst_size);
    float height = src_size.y;
    float plane;
    float row;
    // Compared, not divided: a division may come out just under a whole number.
    if (shape.y > 0.5) {
        plane = texel.y >= 2.0 * height ? 2.0 : (texel.y >= height ? 1.0 : 0.0);
        row = texel.y - plane * height;
    } else if (texel.y < height) {
        plane = 0.0;
        row = texel.y;
    } else {
        plane = 1.0;
        row = texel.y - height;
    }
    vec4 bytes;
    if (shape.x < 1.5) {
        float s = texel.x * 4.0;
        bytes = vec4(sample_at(plane, s, row), sample_at(plane, s + 1.0, row),
                     sample_at(plane, s + 2.0, row), sample_at(plane, s + 3.0, row));
    } else {
        float s = texel.x * 2.0;
        float a = sample_at(plane, s, row);
        float b = sample_at(plane, s + 1.0, row);
        bytes = vec4(mod(a, 4.0) * 64.0, floor(a / 4.0), mod(b, 4.0) * 64.0, floor(b / 4.0));
    }
    gl_FragColor = bytes / 255.0;
}
