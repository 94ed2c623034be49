using System;

namespace AlexNet.Aot.Training;

/// <summary>
/// The order of the training set per epoch and the filling of batches. Both are deterministic functions of the seed and
/// the epoch (<see cref="CounterRng"/>), allocate nothing and keep no state, so an interrupted run resumes exactly. They
/// run on the calling thread; a caller that wants parallelism fills separate parts of a batch on separate threads
/// (the augmentation of an image does not depend on its position in the batch).
/// </summary>
public static class BatchSampler
{
    /// <summary>
    /// Fills <paramref name="order"/> with a permutation of 0 .. <c>order.Length - 1</c> for <paramref name="epoch"/>:
    /// a Fisher–Yates shuffle whose step i swaps position i with a position uniform in [0, i], drawn from
    /// <see cref="CounterRng"/> keyed by (<paramref name="seed"/>, epoch, i, <see cref="RngPurpose.Shuffle"/>).
    /// The same seed and epoch always give the same order; different epochs give independent ones.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="epoch"/> is negative.</exception>
    public static void Shuffle(Span<int> order, ulong seed, int epoch) => Permutation(order, seed, epoch, RngPurpose.Shuffle);

    /// <summary>The Fisher–Yates permutation of <see cref="Shuffle"/> for any purpose.</summary>
    internal static void Permutation(Span<int> order, ulong seed, int epoch, RngPurpose purpose)
    {
        if (epoch < 0)
            throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "the epoch must not be negative");
        for (int i = 0; i < order.Length; i++) order[i] = i;
        ulong key = CounterRng.Key(purpose);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = CounterRng.UniformInt(i + 1, seed, (ulong)epoch, (ulong)i, key);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }

    /// <summary>
    /// Fills one batch: for each k, image <c>indices[k]</c> of <paramref name="data"/> goes through
    /// <paramref name="augmentation"/> (<see cref="Augmentation.Apply"/>, keyed by the image's index in the data set)
    /// into <c>input[k]</c> (<c>[C, dstH, dstW]</c> of the NCHW batch) and its label into <c>labels[k]</c>. Allocates nothing.
    /// </summary>
    /// <param name="data">The data set.</param>
    /// <param name="indices">The batch's images (e.g. a slice of the epoch's <see cref="Shuffle"/> order).</param>
    /// <param name="augmentation">The augmentation and normalization.</param>
    /// <param name="input">At least <c>indices.Length * C * dstH * dstW</c> floats; the batch is written at its start.</param>
    /// <param name="labels">At least <c>indices.Length</c> labels.</param>
    /// <param name="dstH">Rows of the model's input.</param>
    /// <param name="dstW">Columns of the model's input.</param>
    /// <param name="seed">The training seed.</param>
    /// <param name="epoch">The epoch.</param>
    /// <param name="train">True for training (augmentations on), false for evaluation.</param>
    /// <exception cref="ArgumentException">A buffer is too small, an index is out of range, or the augmentation refuses the sizes.</exception>
    public static void FillBatch(TrainingDataset data, ReadOnlySpan<int> indices, Augmentation augmentation, Span<float> input, Span<int> labels,
        int dstH, int dstW, ulong seed, int epoch, bool train)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(augmentation);
        if (dstH <= 0 || dstW <= 0)
            throw new ArgumentOutOfRangeException(nameof(dstH), $"an input of {dstH}x{dstW} is empty");
        int inLen = checked(data.Channels * dstH * dstW);
        if ((long)indices.Length * inLen > input.Length)
            throw new ArgumentException($"the input holds {input.Length} floats; {indices.Length} images of {data.Channels}x{dstH}x{dstW} need {(long)indices.Length * inLen}", nameof(input));
        if (indices.Length > labels.Length)
            throw new ArgumentException($"the labels hold {labels.Length} values; the batch has {indices.Length} images", nameof(labels));
        for (int k = 0; k < indices.Length; k++)
        {
            int i = indices[k];
            augmentation.Apply(data.Image(i), data.Channels, data.Height, data.Width, input.Slice(k * inLen, inLen), dstH, dstW, seed, epoch, i, train);
            labels[k] = data.Label(i);
        }
    }
}
