using System;
using System.IO;

namespace AlexNet.Aot.Imaging;

/// <summary>
/// An image file that cannot be used: not a JPEG or PNG by content, too large, corrupt or truncated.
/// The message starts with the file's path and says what is wrong, in one line. It is an
/// <see cref="IOException"/>, so callers that report I/O failures report it too.
/// </summary>
public sealed class ImageException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>; the message is <c>PATH: PROBLEM</c>.</summary>
    public ImageException(string path, string problem) : base($"{path}: {problem}") => FilePath = path;

    /// <summary>Creates the exception with its cause.</summary>
    public ImageException(string path, string problem, Exception inner) : base($"{path}: {problem}", inner) => FilePath = path;

    /// <summary>The image file (or the description of in-memory bytes) the problem is about.</summary>
    public string FilePath { get; }
}
