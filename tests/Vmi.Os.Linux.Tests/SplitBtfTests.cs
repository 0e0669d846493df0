using Vmi.Mock.Linux;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// Split BTF (a module's): type ids continue after the base's last id, string offsets after the base's string section,
/// and names, members and layouts resolve through both. Built with <see cref="BtfWriter"/> as pahole lays it out.
/// </summary>
public sealed class SplitBtfTests
{
    /// <summary>A base with int, char and list_head; a split with a struct that uses them and points at itself.</summary>
    internal static (BtfTypes Base, byte[] Split) Demo()
    {
        var b = new BtfWriter();
        int u32 = b.Int("unsigned int", 4);
        int chr = b.Int("char", 1, signed: true);
        int listId = b.NextId + 1;
        int ptr = b.Pointer(listId);
        b.Struct("list_head", 16, new("next", ptr, 0), new("prev", ptr, 64));
        b.Struct("kernel_only", 4, new BtfWriter.Member("x", u32, 0));
        BtfTypes kernel = BtfTypes.Parse(b.ToArray());

        var s = new BtfWriter(kernel.LastId, (uint)kernel.StringsLength);
        int name = s.Array(chr, u32, 8);
        int union = s.Union(string.Empty, 4, new BtfWriter.Member("word", u32, 0));
        int self = s.NextId + 1;
        int selfPtr = s.Pointer(self);
        s.Struct("demo_entry", 48,
            new("list", listId, 0), new("size", u32, 128), new("flags", u32, 160, 3), new("mode", u32, 163, 5),
            new("name", name, 192), new("next", selfPtr, 256), new(string.Empty, union, 320));
        s.Typedef("demo_entry_t", self);
        return (kernel, s.ToArray());
    }

    [Fact]
    public void Ids_and_strings_continue_the_base_and_layouts_resolve_through_both()
    {
        (BtfTypes kernel, byte[] blob) = Demo();
        BtfTypes split = BtfTypes.ParseSplit(blob, kernel);
        Assert.Same(kernel, split.Base);
        Assert.Equal(kernel.LastId + 1, split.FirstId);
        Assert.Equal(5, split.Count); // array, union, pointer, struct, typedef
        Assert.Equal(Enumerable.Range(split.FirstId, 5), split.Types().Select(t => t.Id));
        Assert.Equal("list_head", split.NameOf(4)); // a base id, named from the base's strings

        Assert.True(split.TryFindStruct("demo_entry", out int entry) && entry > kernel.LastId);
        Assert.True(split.TryFindStruct("kernel_only", out int k) && k <= kernel.LastId); // the base's, through the split
        Assert.False(kernel.TryFindStruct("demo_entry", out _));

        Assert.Equal(16UL, split.GetField("demo_entry", "size").Offset);
        Assert.Equal(8UL, split.GetField("demo_entry", "list.prev").Offset); // a base struct's member
        Assert.Equal((20UL, 3u, (byte)5), (split.GetField("demo_entry", "mode").Offset, split.GetField("demo_entry", "mode").BitOffset, split.GetField("demo_entry", "mode").BitfieldSize));
        Assert.Equal(8UL, split.GetField("demo_entry", "name").Size);
        Assert.Equal(40UL, split.GetField("demo_entry", "word").Offset); // through an anonymous union of the split
        Assert.Equal(entry, split.PointeeOf(split.GetField("demo_entry", "next").TypeId));
        Assert.Equal(48UL, split.SizeOf(split.Types().Single(t => t.Name == "demo_entry_t").Id));
        ModuleBtfChecks.AssertEveryReferenceResolves(split, "demo split");
    }

    [Fact]
    public void A_reference_past_the_split_or_a_name_past_the_strings_is_seen()
    {
        (BtfTypes kernel, _) = Demo();
        var s = new BtfWriter(kernel.LastId, (uint)kernel.StringsLength);
        int bad = s.Pointer(kernel.LastId + 50);
        BtfTypes split = BtfTypes.ParseSplit(s.ToArray(), kernel);
        Assert.False(split.Contains(split.ReferencesOf(bad).Single()));
        Assert.False(split.IsStringOffset((uint)split.StringsLength));
        Assert.True(split.IsStringOffset((uint)kernel.StringsLength - 1));
    }

    [Fact]
    public void Split_btf_cannot_stack_on_split_btf()
    {
        (BtfTypes kernel, byte[] blob) = Demo();
        BtfTypes split = BtfTypes.ParseSplit(blob, kernel);
        Assert.Throws<ArgumentException>(() => BtfTypes.ParseSplit(blob, split));
    }

    [Fact]
    public void An_empty_string_section_is_fine_for_split_btf_but_not_for_a_base()
    {
        (BtfTypes kernel, _) = Demo();
        byte[] empty = new BtfWriter(kernel.LastId, (uint)kernel.StringsLength).ToArray();
        Assert.Equal(0, BtfTypes.ParseSplit(empty, kernel).Count);
        var e = Assert.Throws<LinuxIntrospectionException>(() => BtfTypes.Parse(empty));
        Assert.Contains("empty string", e.Message, StringComparison.Ordinal);
    }
}
