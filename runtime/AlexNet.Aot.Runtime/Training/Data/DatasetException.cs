using System;
using System.IO;

namespace AlexNet.Aot.Training;

/// <summary>
/// Training data that cannot be used: a missing or unreadable file or folder, a malformed IDX file (bad magic number,
/// truncated, trailing data, implausible dimensions, corrupt gzip), labels out of range, an image folder without classes
/// or images, an undecodable image, a malformed metrics file. The message starts with the file's or folder's path and
/// says what is wrong, in one line. Like <see cref="Imaging.ImageException"/> it is an <see cref="IOException"/>, so
/// callers that report I/O failures report it too.
/// </summary>
public sealed class DatasetException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>; the message is <c>PATH: PROBLEM</c>.</summary>
    public DatasetException(string path, string problem) : base($"{path}: {problem}") => FilePath = path;

    /// <summary>Creates the exception with its cause.</summary>
    public DatasetException(string path, string problem, Exception inner) : base($"{path}: {problem}", inner) => FilePath = path;

    /// <summary>The file or folder the problem is about.</summary>
    public string FilePath { get; }
}
