using System;
using System.IO;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using AlexNet.Aot.Models;

namespace AlexNet.Aot.Native;

/// <summary>The C ABI (include/alexnet.h). No exception crosses it: each becomes a status and a thread-local message.</summary>
public static unsafe class Exports
{
    private const int Ok = 0, InvalidArgument = 1, NotFound = 2, BadWeights = 3, Busy = 4, Internal = 5;

    [ThreadStatic] private static IntPtr t_error;
    private static IntPtr s_isa;

    [UnmanagedCallersOnly(EntryPoint = "alexnet_session_create")]
    public static int Create(byte* model, byte* weightsPath, int maxBatch, int threads, IntPtr* result)
    {
        try
        {
            if (result == null) return Fail(InvalidArgument, "out is null");
            *result = IntPtr.Zero;
            if (model == null || weightsPath == null) return Fail(InvalidArgument, "model and weights_path must not be null");
            string name = Marshal.PtrToStringUTF8((IntPtr)model) ?? "";
            string path = Marshal.PtrToStringUTF8((IntPtr)weightsPath) ?? "";
            ModelEntry? entry = ModelCatalog.Find(name);
            if (entry is null) return Fail(NotFound, $"no model named '{name}'");
            if (!File.Exists(path)) return Fail(NotFound, $"{path}: file not found");
            Network net = entry.Create(WeightsFile.Load(path, entry.Info), new NetworkOptions { MaxBatch = maxBatch, Threads = threads });
            *result = GCHandle.ToIntPtr(GCHandle.Alloc(net));
            return Ok;
        }
        catch (WeightsException e) { return Fail(BadWeights, e.Message); }
        catch (ArgumentException e) { return Fail(InvalidArgument, e.Message); }
        catch (Exception e) { return Fail(Internal, e.GetType().Name + ": " + e.Message); }
    }

    [UnmanagedCallersOnly(EntryPoint = "alexnet_session_shape")]
    public static int Shape(IntPtr session, int* channels, int* height, int* width, int* classes)
    {
        try
        {
            if (!TryGet(session, out Network? net)) return InvalidArgument;
            int[] s = net.Info.InputShape;
            if (channels != null) *channels = s[0];
            if (height != null) *height = s[1];
            if (width != null) *width = s[2];
            if (classes != null) *classes = net.Classes;
            return Ok;
        }
        catch (Exception e) { return Fail(Internal, e.GetType().Name + ": " + e.Message); }
    }

    [UnmanagedCallersOnly(EntryPoint = "alexnet_session_run")]
    public static int Run(IntPtr session, float* input, nuint inputLength, int batch, float* output, nuint outputLength, int logits)
    {
        try
        {
            if (!TryGet(session, out Network? net)) return InvalidArgument;
            if (input == null || output == null) return Fail(InvalidArgument, "input and output must not be null");
            if (inputLength > int.MaxValue || outputLength > int.MaxValue) return Fail(InvalidArgument, "a length is larger than 2^31 - 1 floats");
            net.Forward(new ReadOnlySpan<float>(input, (int)inputLength), new Span<float>(output, (int)outputLength), batch, logits != 0);
            return Ok;
        }
        catch (ObjectDisposedException e) { return Fail(InvalidArgument, e.Message); }
        catch (InvalidOperationException e) { return Fail(Busy, e.Message); }
        catch (ArgumentException e) { return Fail(InvalidArgument, e.Message); }
        catch (Exception e) { return Fail(Internal, e.GetType().Name + ": " + e.Message); }
    }

    [UnmanagedCallersOnly(EntryPoint = "alexnet_session_destroy")]
    public static void Destroy(IntPtr session)
    {
        try
        {
            if (session == IntPtr.Zero) return;
            GCHandle handle = GCHandle.FromIntPtr(session);
            (handle.Target as Network)?.Dispose();
            handle.Free();
        }
        catch (Exception e) { Fail(Internal, e.GetType().Name + ": " + e.Message); }
    }

    [UnmanagedCallersOnly(EntryPoint = "alexnet_last_error")]
    public static IntPtr LastError() => t_error;

    [UnmanagedCallersOnly(EntryPoint = "alexnet_isa_path")]
    public static IntPtr IsaPath()
    {
        if (s_isa == IntPtr.Zero) s_isa = Marshal.StringToCoTaskMemUTF8(Isa.Path);
        return s_isa;
    }

    private static bool TryGet(IntPtr session, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Network? net)
    {
        net = null;
        if (session == IntPtr.Zero) { Fail(InvalidArgument, "session is null"); return false; }
        net = GCHandle.FromIntPtr(session).Target as Network;
        if (net is null) { Fail(InvalidArgument, "not a session"); return false; }
        return true;
    }

    private static int Fail(int status, string message)
    {
        if (t_error != IntPtr.Zero) Marshal.FreeCoTaskMem(t_error);
        t_error = Marshal.StringToCoTaskMemUTF8(message);
        return status;
    }
}
