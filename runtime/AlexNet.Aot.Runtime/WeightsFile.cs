using System;
using System.Buffers.Binary;
using System.IO;
using AlexNet.Aot.Pytorch;

namespace AlexNet.Aot;

/// <summary>
/// Opens a weights file of any supported format, told apart by its content, never by its extension:
/// safetensors (an 8-byte little-endian header length, then a JSON object), a PyTorch checkpoint in the zip
/// format (<c>PK\x03\x04</c>) or the legacy format (a pickle, <c>0x80</c>, of PyTorch's magic number), or ONNX
/// (a protobuf ModelProto starting with field 1, ir_version: byte <c>0x08</c>), read by <see cref="Onnx.OnnxModelFile"/>:
/// given the model, an ONNX graph is matched to the spec node by node and its tensors come back under the spec's
/// checkpoint keys (so Caffe-style names and batch norm folded by the exporter work); without it, under their own names.
/// Every problem is a <see cref="WeightsException"/> whose message starts with the file's path.
/// </summary>
public static class WeightsFile
{
    /// <summary>Loads the weights file at <paramref name="path"/>, whatever its format; for ONNX, checked against and bound to <paramref name="model"/> when given.</summary>
    /// <exception cref="WeightsException">The file is missing, unreadable, of an unknown format or malformed; the message starts with <paramref name="path"/>.</exception>
    public static IWeightSource Load(string path, ModelInfo? model = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw new WeightsException($"{path}: is a directory, not a weights file");
        if (!File.Exists(path))
            throw new WeightsException($"{path}: file not found");

        Span<byte> head = stackalloc byte[16];
        int n;
        long length;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            length = fs.Length;
            n = 0;
            while (n < head.Length)
            {
                int r = fs.Read(head[n..]);
                if (r == 0) break;
                n += r;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException)
        {
            throw new WeightsException($"{path}: cannot read the file: {e.Message}", e);
        }
        head = head[..n];
        if (n == 0)
            throw new WeightsException($"{path}: file is empty (0 bytes); not a weights file");

        switch (Detect(head, length))
        {
            case Format.SafeTensors:
                return SafeTensorsFile.Load(path);
            case Format.Pth:
                return PthFile.Load(path);
            case Format.Onnx:
                return Onnx.OnnxModelFile.Load(path, model);
            default:
                throw new WeightsException(
                    $"{path}: unknown weights format (first bytes: {PthFile.Hex(head)}); expected safetensors, a PyTorch checkpoint (.pth, zip or legacy) or ONNX");
        }
    }

    private enum Format { Unknown, SafeTensors, Pth, Onnx }

    private static Format Detect(ReadOnlySpan<byte> head, long length)
    {
        // safetensors: header length N (little-endian u64) with the JSON object's '{' right after it.
        if (head.Length >= 9 && head[8] == (byte)'{')
        {
            ulong header = BinaryPrimitives.ReadUInt64LittleEndian(head);
            if (header >= 2 && header <= (ulong)Math.Max(0, length - 8))
                return Format.SafeTensors;
        }
        // zip (PyTorch 1.6+): a local file header, or the end record of an empty archive.
        if (head.Length >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6)))
            return Format.Pth;
        // legacy PyTorch: a pickle (PROTO) whose first value is the magic number. Any pickle is handed to the
        // PyTorch reader, which refuses what is not a checkpoint (a hostile pickle gets the refusal it deserves).
        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5)
            return Format.Pth;
        // ONNX: a ModelProto starts with field 1 (ir_version), a varint: tag byte 0x08.
        if (head[0] == 0x08)
            return Format.Onnx;
        return Format.Unknown;
    }
}
